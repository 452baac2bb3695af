//! Cursor pagination, the same for every list: `?cursor=&limit=` in, and
//! `{"items":[...],"next_cursor":...}` out, where `next_cursor` is `null` on the last
//! page. Cursors are opaque to clients; each list checks its own before using it.
use serde::Deserialize;

use crate::error::ApiError;

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1_000;

/// `limit` and `cursor` of a list request. `limit` is read as text and parsed here,
/// so this struct can be `#[serde(flatten)]`ed into a list's own query (flattened
/// query values all arrive as strings).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Where the page starts: the `next_cursor` of the page before.
    #[serde(default)]
    pub cursor: Option<String>,
    /// Items on the page, 1 to 1,000 (50 when absent).
    #[serde(default)]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

impl PageQuery {
    /// The page size asked for: 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] when absent.
    pub fn limit(&self) -> Result<usize, ApiError> {
        match self.limit.as_deref().map(str::parse::<usize>) {
            None => Ok(DEFAULT_LIMIT),
            Some(Ok(limit)) if (1..=MAX_LIMIT).contains(&limit) => Ok(limit),
            Some(_) => Err(ApiError::invalid(
                "invalid_limit",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            )),
        }
    }

    /// The cursor, if any, read by `parse` (a cursor it cannot read is refused).
    pub fn cursor_as<'a, T>(
        &'a self,
        parse: impl Fn(&'a str) -> Option<T>,
    ) -> Result<Option<T>, ApiError> {
        match self.cursor.as_deref().filter(|cursor| !cursor.is_empty()) {
            None => Ok(None),
            Some(cursor) => parse(cursor).map(Some).ok_or_else(|| {
                ApiError::invalid("invalid_cursor", "cursor is not one this list returned")
            }),
        }
    }

    /// The cursor, if any, after `valid` accepted it.
    pub fn cursor(&self, valid: impl Fn(&str) -> bool) -> Result<Option<&str>, ApiError> {
        self.cursor_as(|cursor| valid(cursor).then_some(cursor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_bounded_and_cursors_checked() {
        let query = PageQuery {
            cursor: Some("x".into()),
            limit: Some("0".into()),
        };
        assert!(query.limit().is_err());
        assert!(query.cursor(|cursor| cursor == "y").is_err());
        assert_eq!(query.cursor(|cursor| cursor == "x").unwrap(), Some("x"));
        assert_eq!(PageQuery::default().limit().unwrap(), DEFAULT_LIMIT);
    }
}
