// A CSV file cut into parts of whole rows, each with the header, so a long import
// goes to the API a part at a time and shows its progress. Quoted fields may hold
// commas, quotes and line breaks; a row ends only at a line break outside quotes.

/** The file's rows as text (without their line breaks), the header first. */
export function csvRows(text: string): string[] {
  const rows: string[] = [];
  let start = 0;
  let quoted = false;
  for (let index = 0; index < text.length; index++) {
    const character = text[index];
    if (character === '"') quoted = !quoted;
    else if (character === "\n" && !quoted) {
      rows.push(text.slice(start, index).replace(/\r$/, ""));
      start = index + 1;
    }
  }
  if (start < text.length) rows.push(text.slice(start).replace(/\r$/, ""));
  return rows.filter((row, index) => index === 0 || row.trim() !== "");
}

/** One part of an import: its CSV text, and the file row its first data row is. */
export type CsvPart = { text: string; firstRow: number; rows: number };

/**
 * The file in parts of at most `size` data rows each, every part with the header.
 * Rows are numbered as a spreadsheet shows them: the header is row 1.
 */
export function csvParts(text: string, size: number): CsvPart[] {
  const [header, ...rows] = csvRows(text.replace(/^\uFEFF/, ""));
  if (header === undefined) return [];
  const parts: CsvPart[] = [];
  for (let start = 0; start < rows.length; start += size) {
    const slice = rows.slice(start, start + size);
    parts.push({ text: [header, ...slice].join("\n") + "\n", firstRow: start + 2, rows: slice.length });
  }
  return parts;
}
