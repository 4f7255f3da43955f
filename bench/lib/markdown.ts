/** The table both reports (docs/benchmarks.md, docs/reliability.md) are made of. */

/** A markdown table: header, rule, a line per row; cells go in as given (see `esc`). */
export function mdTable(head: string[], rows: unknown[][]): string[] {
  const line = (cells: unknown[]) => `| ${cells.join(' | ')} |`;
  return [line(head), `|${head.map(() => '---').join('|')}|`, ...rows.map(line)];
}

/** Text for a table cell: a `|` would end the cell, a newline the row. */
export const esc = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
