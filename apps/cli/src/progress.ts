/**
 * Progress for long CLI work: a redrawn bar on a terminal, a line per quarter otherwise (so logs
 * and CI output stay readable).
 */
export function progressBar(total: number, label: string, out: NodeJS.WriteStream = process.stdout): { tick(): void; done(): void } {
  let n = 0;
  let lastQuarter = 0;
  const draw = () => {
    const width = 30;
    const filled = total === 0 ? width : Math.round((n / total) * width);
    out.write(`\r  [${"#".repeat(filled)}${" ".repeat(width - filled)}] ${n}/${total} ${label}`);
  };
  return {
    tick() {
      n++;
      if (out.isTTY) {
        if (n === total || n % Math.max(1, Math.floor(total / 100)) === 0) draw();
      } else {
        const quarter = Math.floor((n / total) * 4);
        if (quarter > lastQuarter) {
          lastQuarter = quarter;
          out.write(`  ${n}/${total} ${label}\n`);
        }
      }
    },
    done() {
      if (out.isTTY) {
        draw();
        out.write("\n");
      }
    },
  };
}
