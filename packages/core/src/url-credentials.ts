/**
 * Credentials in broker URLs, read and hidden one way everywhere.
 *
 * Reading follows Python's `urllib.parse.urlsplit`, which kombu uses (kombu/utils/url.py,
 * `url_to_parts`): the netloc ends at the first `/`, `?` or `#`, and the userinfo ends at the
 * LAST `@` of the netloc, so `amqp://user:p@ss@host//` is user `user`, password `p@ss`, host
 * `host`, exactly as Python Celery connects with it. Percent escapes are undone as
 * `urllib.parse.unquote` does (an invalid escape stays as written).
 *
 * This module imports nothing: `CeleriacError` masks its messages with it.
 */

/** What kombu's `sanitize_url` puts in place of a password. */
export const URL_PASSWORD_MASK = "**";

/** The start of a URL inside any text: `scheme://`. */
const URL_START = /[a-z][a-z0-9+.-]*:\/\//gi;

/**
 * Hides every password in `text`: one URL, a `;`-separated failover list
 * (`amqp://u:p@h1;amqp://u:p@h2`, `sentinel://:p@h1;sentinel://:p@h2`), or a log line or error
 * message with URLs inside, however the password is written (raw `@`, percent-encoded, an
 * SQS secret key). It errs toward hiding: everything between the first `:` of the userinfo and
 * the last `@` before a space or the next URL is masked, so even a password holding `/`, `?` or
 * `#` (which no parser reads as intended) does not leak.
 */
export function maskUrl(text: string, mask: string = URL_PASSWORD_MASK): string {
  if (!text.includes("://")) return text;
  const urls = [...text.matchAll(URL_START)];
  let out = "";
  let pos = 0;
  urls.forEach((m, i) => {
    const from = m.index + m[0].length;
    const to = urls[i + 1]?.index ?? text.length;
    out += text.slice(pos, from);
    const region = text.slice(from, to);
    const space = region.search(/\s/);
    const authority = space === -1 ? region : region.slice(0, space);
    const at = authority.lastIndexOf("@");
    const colon = authority.indexOf(":");
    out += colon !== -1 && colon < at ? `${authority.slice(0, colon + 1)}${mask}${region.slice(at)}` : region;
    pos = to;
  });
  return out + text.slice(pos);
}

/** `urllib.parse.unquote`: `%XX` escapes as UTF-8, invalid ones left as written; never throws. */
export function pyUnquote(s: string): string {
  if (!s.includes("%")) return s;
  return s.replace(/(?:%[0-9a-f]{2})+/gi, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      // Not valid UTF-8 as a whole: Python substitutes U+FFFD per bad byte.
      return new TextDecoder("utf-8").decode(Uint8Array.from(run.slice(1).split("%"), (h) => parseInt(h, 16)));
    }
  });
}

/** A URL split as Python splits it; `username`/`password` decoded, `undefined` when absent. */
export interface UrlCredentials {
  /** Lower-cased scheme, without `://`. */
  scheme: string;
  username: string | undefined;
  password: string | undefined;
  /** `host[:port]` as written (the netloc after the userinfo). */
  hostPort: string;
  /** Path, query and fragment as written. */
  rest: string;
}

/** Splits `scheme://[user[:password]@]host[:port][/path][?query][#fragment]` as `urlsplit` does; `null` if there is no `scheme://`. */
export function splitUrlCredentials(url: string): UrlCredentials | null {
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)(.*)$/is.exec(url);
  if (!m) return null;
  const netloc = m[2]!;
  const at = netloc.lastIndexOf("@");
  const userinfo = at === -1 ? null : netloc.slice(0, at);
  const colon = userinfo === null ? -1 : userinfo.indexOf(":");
  return {
    scheme: m[1]!.toLowerCase(),
    username: userinfo === null ? undefined : pyUnquote(colon === -1 ? userinfo : userinfo.slice(0, colon)),
    password: userinfo === null || colon === -1 ? undefined : pyUnquote(userinfo.slice(colon + 1)),
    hostPort: at === -1 ? netloc : netloc.slice(at + 1),
    rest: m[3]!,
  };
}

/**
 * The name of a delimiter that ends the netloc early when a password holds it raw: a `/`, `?` or
 * `#` in the password makes every parser (Python's too) read part of the password as the path,
 * which then shows up in error messages. Null when the URL has no such `@` after its netloc.
 * (A raw `@` in a vhost or path is read as this too; percent-encoded as %40 it works everywhere.)
 * Each `;`-separated URL of a failover list is checked.
 */
export function rawDelimiterInPassword(url: string): string | null {
  for (const one of url.split(/;(?=[a-z][a-z0-9+.-]*:\/\/)/i)) {
    // An empty netloc is a file URL (`sqlite:///path/a@b.db`): its path may hold an `@`.
    const m = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]+([/?#])(\S*)$/is.exec(one);
    if (m && m[2]!.includes("@")) return m[1]!;
  }
  return null;
}

/**
 * The same URL with its username and password percent-encoded, so that a WHATWG `URL` or any
 * client library reads the credentials Python reads (a raw `@`, `:` or `%` in a password
 * included). A URL without credentials comes back unchanged.
 */
export function withEncodedCredentials(url: string): string {
  const parts = splitUrlCredentials(url);
  if (!parts || parts.username === undefined) return url;
  const scheme = url.slice(0, url.indexOf("://"));
  const user = encodeURIComponent(parts.username);
  const pass = parts.password === undefined ? "" : `:${encodeURIComponent(parts.password)}`;
  return `${scheme}://${user}${pass}@${parts.hostPort}${parts.rest}`;
}
