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

/** One row's fields: commas separate them, quotes may hold commas and `""` quotes. */
export function csvFields(row: string): string[] {
  const fields: string[] = [];
  let field = "";
  let quoted = false;
  for (let index = 0; index < row.length; index++) {
    const character = row[index];
    if (quoted) {
      if (character === '"' && row[index + 1] === '"') {
        field += '"';
        index++;
      } else if (character === '"') quoted = false;
      else field += character;
    } else if (character === '"') quoted = true;
    else if (character === ",") {
      fields.push(field.trim());
      field = "";
    } else field += character;
  }
  fields.push(field.trim());
  return fields;
}

/**
 * Recipients with their own variables from CSV text whose header names `number`
 * and the variables: `number,name` then `010-1234-5678,김민수`.
 */
export function recipientsFromCsv(text: string): { to: string; variables: Record<string, string> }[] {
  const [header, ...rows] = csvRows(text.trim());
  if (!header) return [];
  const names = csvFields(header);
  const number = names.findIndex((name) => name.toLowerCase() === "number");
  if (number < 0) return [];
  return rows.map((row) => {
    const fields = csvFields(row);
    const variables: Record<string, string> = {};
    names.forEach((name, index) => {
      if (index !== number && name) variables[name] = fields[index] ?? "";
    });
    return { to: fields[number] ?? "", variables };
  });
}
