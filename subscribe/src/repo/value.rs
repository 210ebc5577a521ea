//! Values as both engines store them, and rows read back by column name with their types checked.
//!
//! Columns are only BIGINT, DOUBLE PRECISION and TEXT, the types both engines and both drivers agree on.
//! A value of another type than its field expects is an error naming the column, never a default.

use std::sync::Arc;

use super::RepoError;

/// One SQL value. A `Null` parameter is typed as TEXT for PostgreSQL: only TEXT columns are nullable.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Real(f64),
    Text(String),
    Null,
}

impl Value {
    /// A `u64` (sequence numbers, counts) as BIGINT; one past `i64::MAX` would not read back.
    pub fn big(v: u64, what: &'static str) -> Result<Value, RepoError> {
        i64::try_from(v).map(Value::Int).map_err(|_| RepoError::OutOfRange { what, value: v })
    }

    fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "an integer",
            Value::Real(_) => "a real number",
            Value::Text(_) => "text",
            Value::Null => "NULL",
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Real(f64::from(v))
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(i64::from(v))
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        v.map_or(Value::Null, Value::Text)
    }
}

/// A Rust type a column can be read into.
pub trait FromValue: Sized {
    /// What the column must hold, for the error.
    const EXPECTED: &'static str;
    fn from_value(v: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    const EXPECTED: &'static str = "an integer";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl FromValue for u64 {
    const EXPECTED: &'static str = "a non-negative integer";
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).and_then(|i| u64::try_from(i).ok())
    }
}

impl FromValue for u32 {
    const EXPECTED: &'static str = "a non-negative integer below 2^32";
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).and_then(|i| u32::try_from(i).ok())
    }
}

impl FromValue for bool {
    const EXPECTED: &'static str = "0 or 1";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(0) => Some(false),
            Value::Int(1) => Some(true),
            _ => None,
        }
    }
}

impl FromValue for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Real(r) => Some(*r),
            // SQLite may hand back a whole REAL as an integer; widening it loses nothing.
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

impl FromValue for f32 {
    const EXPECTED: &'static str = "a number";
    fn from_value(v: &Value) -> Option<Self> {
        // Stored from an f32, so narrowing gives back the value written.
        f64::from_value(v).map(|r| r as f32)
    }
}

impl FromValue for String {
    const EXPECTED: &'static str = "text";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(t) => Some(t.clone()),
            _ => None,
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// One result row: its values, found by column name.
#[derive(Debug, Clone)]
pub struct Row {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    /// `columns` is shared by every row of one result.
    pub(super) fn new(columns: Arc<[String]>, values: Vec<Value>) -> Row {
        Row { columns, values }
    }

    /// The column's value as `T`; a missing column or a value of another type is an error.
    pub fn get<T: FromValue>(&self, column: &str) -> Result<T, RepoError> {
        let i = self
            .columns
            .iter()
            .position(|c| c == column)
            .ok_or_else(|| RepoError::NoColumn { column: column.to_string() })?;
        let v = &self.values[i];
        T::from_value(v).ok_or_else(|| RepoError::Column {
            column: column.to_string(),
            expected: T::EXPECTED,
            found: match v {
                Value::Int(i) => format!("{} ({i})", v.kind()),
                v => v.kind().to_string(),
            },
        })
    }
}

/// A typed row struct read from a [`Row`].
pub trait FromRow: Sized {
    fn from_row(row: &Row) -> Result<Self, RepoError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(values: Vec<Value>) -> Row {
        let columns: Arc<[String]> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        Row::new(columns, values)
    }

    #[test]
    fn a_wrong_type_is_an_error_naming_the_column() {
        let r = row(vec![Value::Text("x".into()), Value::Int(-1)]);
        assert_eq!(r.get::<String>("a").unwrap(), "x");
        assert_eq!(r.get::<i64>("b").unwrap(), -1);
        let e = r.get::<i64>("a").unwrap_err().to_string();
        assert!(e.contains("column a") && e.contains("text"), "{e}");
        assert!(r.get::<u64>("b").is_err(), "a negative count is not read as a large one");
        assert!(r.get::<bool>("b").is_err());
        assert!(r.get::<String>("c").is_err());
    }

    #[test]
    fn nulls_only_where_the_field_allows_them() {
        let r = row(vec![Value::Null, Value::Int(3)]);
        assert_eq!(r.get::<Option<String>>("a").unwrap(), None);
        assert_eq!(r.get::<Option<i64>>("b").unwrap(), Some(3));
        assert!(r.get::<String>("a").is_err());
        assert_eq!(r.get::<f64>("b").unwrap(), 3.0);
    }

    #[test]
    fn counts_beyond_bigint_are_refused() {
        assert_eq!(Value::big(7, "seq").unwrap(), Value::Int(7));
        assert!(Value::big(u64::MAX, "seq").is_err());
    }
}
