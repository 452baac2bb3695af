//! CSV bodies of imports (contacts, the blocklist): `content-type: text/csv`, a
//! header row naming the columns (a byte-order mark is ignored), at most
//! [`MAX_IMPORT_ROWS`] rows; each row read whole or reported with its row number
//! (the header is row 1, as a spreadsheet shows it) and why.
use axum::http::HeaderMap;

use crate::error::ApiError;

/// Most rows one import may have.
pub const MAX_IMPORT_ROWS: usize = 100_000;

/// A row that was not imported, and why.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct RowError {
    /// 1-based, counting the header as row 1, as a spreadsheet shows it.
    pub row: usize,
    pub error: String,
}

/// Refuses a body that is not `text/csv` (415).
pub fn require_csv(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("text/csv") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            "an import body must be text/csv".to_owned(),
        ))
    }
}

/// A CSV body read: its header's columns (trimmed), and every row with as many
/// columns as the header, by row number; the other rows as errors.
#[derive(Debug)]
pub struct CsvTable {
    pub columns: Vec<String>,
    pub rows: Vec<(usize, csv::StringRecord)>,
    pub errors: Vec<RowError>,
}

impl CsvTable {
    pub fn read(body: &[u8]) -> Result<Self, ApiError> {
        let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(body);
        let header = reader
            .headers()
            .map_err(|error| ApiError::invalid("invalid_csv", format!("header row: {error}")))?
            .clone();
        let columns: Vec<String> = header.iter().map(|name| name.trim().to_owned()).collect();
        let mut table = Self {
            columns,
            rows: Vec::new(),
            errors: Vec::new(),
        };
        for (offset, record) in reader.records().enumerate() {
            let row = offset + 2;
            if offset >= MAX_IMPORT_ROWS {
                return Err(ApiError::invalid(
                    "too_many_rows",
                    format!("an import may have at most {MAX_IMPORT_ROWS} rows"),
                ));
            }
            match record {
                Ok(record) if record.len() == table.columns.len() => table.rows.push((row, record)),
                Ok(record) => table.errors.push(RowError {
                    row,
                    error: format!(
                        "has {} columns; the header has {}",
                        record.len(),
                        table.columns.len()
                    ),
                }),
                Err(error) => table.errors.push(RowError {
                    row,
                    error: error.to_string(),
                }),
            }
        }
        Ok(table)
    }

    /// Rows read, the header not counted.
    pub fn row_count(&self) -> usize {
        self.rows.len() + self.errors.len()
    }

    /// The position of the column named `name`, or 422 saying the header lacks it.
    pub fn column(&self, name: &str) -> Result<usize, ApiError> {
        self.columns
            .iter()
            .position(|column| column == name)
            .ok_or_else(|| {
                ApiError::invalid(
                    "invalid_csv",
                    format!("the header row must name a '{name}' column"),
                )
            })
    }
}
