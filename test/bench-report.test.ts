// The benchmark's report writer (bench/lib/report.mjs) on fixed inputs: tables, SVG bars, and
// the generated section of docs/benchmarks.md replaced without touching the hand-written rest.
import { describe, expect, it } from "vitest";
import { BEGIN, END, barChart, fmt, replaceGenerated, table, verdict } from "../bench/lib/report.mjs";

describe("bench report", () => {
  it("formats numbers, missing figures and verdicts", () => {
    expect(fmt(12345.6)).toBe("12,346");
    expect(fmt(1.234, 2)).toBe("1.23");
    expect(fmt(NaN)).toBe("n/a");
    expect(fmt(undefined)).toBe("n/a");
    expect(verdict(true)).toBe("pass");
    expect(verdict(false)).toBe("**FAIL**");
    expect(verdict(null)).toBe("n/a");
  });

  it("writes a Markdown table with the first column left-aligned", () => {
    expect(
      table(
        ["a", "b"],
        [
          ["x", "1"],
          ["y", "2"],
        ],
      ),
    ).toBe("| a | b |\n| --- | ---: |\n| x | 1 |\n| y | 2 |");
  });

  it("draws bars to scale, escapes labels, and shows n/a for a missing value", () => {
    const svg = barChart({
      title: "t <1>",
      unit: "/s",
      bars: [
        { label: "A & B", value: 200, group: "Celeriac" },
        { label: "C", value: 100, group: "others" },
        { label: "D", value: NaN, group: "others" },
      ],
    });
    expect(svg.startsWith("<svg ")).toBe(true);
    expect(svg).toContain("t &lt;1&gt;");
    expect(svg).toContain("A &amp; B");
    const widths = [...svg.matchAll(/<rect x="\d+" y="\d+" width="([\d.]+)" height="20"/g)].map((m) => Number(m[1]));
    expect(widths).toEqual([360, 180, 1]);
    expect(svg).toContain(">200 /s<");
    expect(svg).toContain(">n/a<");
    expect(svg).toContain(">Celeriac<");
  });

  it("replaces only the generated section, or appends it once", () => {
    const doc = `# Benchmarks\n\nhand-written\n\n${BEGIN}\n\nold\n\n${END}\n\n## After\n`;
    const next = replaceGenerated(doc, "new table");
    expect(next).toBe(`# Benchmarks\n\nhand-written\n\n${BEGIN}\n\nnew table\n\n${END}\n\n## After\n`);
    expect(replaceGenerated(next, "new table")).toBe(next);
    const appended = replaceGenerated("# Benchmarks\n", "first");
    expect(appended).toBe(`# Benchmarks\n\n${BEGIN}\n\nfirst\n\n${END}\n`);
    expect(() => replaceGenerated(`x\n${BEGIN}\n`, "y")).toThrow(/only one of/);
  });
});
