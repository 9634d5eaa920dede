//! Tables owned by components outside the core (the gateways): their migrations, and a small
//! portable SQL interface to reach them.
//!
//! A component declares its [`Migration`]s (one SQL text per backend) and gets a [`Tables`]
//! handle from [`crate::Store::tables`], which applies what is pending first. Queries are
//! written once with `$1` placeholders (both backends accept them) and take [`Value`]s, so a
//! component never sees the database driver. By convention a component's SQL names only
//! the tables its own migrations created.

use std::borrow::Cow;
use std::sync::Arc;

use sqlx::{Column, TypeInfo, ValueRef};

use crate::StoreError;
use crate::db::{BeginWrite, Db, on_pool};

/// One schema change of a component, for each backend.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Counts up from 1 within the component.
    pub version: i64,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

impl Migration {
    /// A change written once for both backends: both accept `TEXT`, `BIGINT` (an integer
    /// column on SQLite), `BOOLEAN`, `IF NOT EXISTS` and the usual constraints.
    pub const fn both(version: i64, sql: &'static str) -> Self {
        Self {
            version,
            sqlite: sql,
            postgres: sql,
        }
    }
}

/// A value bound to a query or read from a row. Nulls carry their type, since PostgreSQL
/// wants a typed parameter even for `NULL`.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(Option<bool>),
    Blob(Option<Vec<u8>>),
    Float(Option<f64>),
}

impl Value {
    fn is_null(&self) -> bool {
        matches!(
            self,
            Value::Int(None)
                | Value::Text(None)
                | Value::Bool(None)
                | Value::Blob(None)
                | Value::Float(None)
        )
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(Some(v))
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(Some(v.to_owned()))
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(Some(v.clone()))
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(Some(v))
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        Value::Text(v.map(str::to_owned))
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Value::Text(v)
    }
}
impl From<&Option<String>> for Value {
    fn from(v: &Option<String>) -> Self {
        Value::Text(v.clone())
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(Some(v))
    }
}

/// Reading a Rust value out of a [`Value`].
pub trait FromValue: Sized {
    /// `None` when the value has another type (or is null for a non-`Option`).
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(v) => *v,
            Value::Bool(v) => v.map(i64::from),
            _ => None,
        }
    }
}
impl FromValue for bool {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Bool(v) => *v,
            // SQLite keeps booleans as integers.
            Value::Int(v) => v.map(|v| v != 0),
            _ => None,
        }
    }
}
impl FromValue for String {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(v) => v.clone(),
            _ => None,
        }
    }
}
impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Blob(v) => v.clone(),
            _ => None,
        }
    }
}
impl FromValue for f64 {
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Float(v) => *v,
            Value::Int(v) => v.map(|v| v as f64),
            _ => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Option<Self> {
        if value.is_null() {
            Some(None)
        } else {
            T::from_value(value).map(Some)
        }
    }
}

/// One row of a result, its columns addressed by name.
#[derive(Clone, Debug)]
pub struct Row {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    /// The column `name` as a `T`; an error names the column if it is missing or has
    /// another type.
    pub fn get<T: FromValue>(&self, name: &str) -> Result<T, StoreError> {
        let index = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| StoreError::Column(format!("no column {name}")))?;
        T::from_value(&self.values[index])
            .ok_or_else(|| StoreError::Column(format!("column {name} has another type")))
    }
}

/// A statement with its parameters, for [`Tables::transaction`].
#[derive(Clone, Debug)]
pub struct Statement {
    pub sql: Cow<'static, str>,
    pub params: Vec<Value>,
}

impl Statement {
    pub fn new(sql: impl Into<Cow<'static, str>>, params: Vec<Value>) -> Self {
        Self {
            sql: sql.into(),
            params,
        }
    }
}

/// A component's way to its own tables. Cheap to clone.
#[derive(Clone)]
pub struct Tables {
    db: Db,
    component: &'static str,
}

impl Tables {
    pub(crate) async fn open(
        db: Db,
        component: &'static str,
        migrations: &[Migration],
    ) -> Result<Self, StoreError> {
        crate::migrate::run_component(&db, component, migrations).await?;
        Ok(Self { db, component })
    }

    /// The component these tables belong to.
    pub fn component(&self) -> &'static str {
        self.component
    }

    /// Runs a query and returns every row.
    pub async fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        on_pool!(&self.db, pool => {
            let rows = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), params).fetch_all(pool).await?;
            rows.iter().map(decode).collect()
        })
    }

    /// Runs a query and returns its first row, if any.
    pub async fn query_opt(&self, sql: &str, params: &[Value]) -> Result<Option<Row>, StoreError> {
        on_pool!(&self.db, pool => {
            let row = bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), params).fetch_optional(pool).await?;
            row.as_ref().map(decode).transpose()
        })
    }

    /// Runs a statement and returns how many rows it changed.
    pub async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        Ok(
            on_pool!(&self.db, pool => bind_all(sqlx::query(sqlx::AssertSqlSafe(sql)), params)
            .execute(pool).await?.rows_affected()),
        )
    }

    /// Runs statements in one transaction that holds the write lock from its start, and
    /// returns how many rows each changed: all of them happen, or none.
    pub async fn transaction(&self, statements: &[Statement]) -> Result<Vec<u64>, StoreError> {
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin_write().await?;
            let mut changed = Vec::with_capacity(statements.len());
            for statement in statements {
                let done = bind_all(sqlx::query(sqlx::AssertSqlSafe(statement.sql.as_ref())), &statement.params)
                    .execute(&mut *tx)
                    .await?;
                changed.push(done.rows_affected());
            }
            tx.commit().await?;
            Ok(changed)
        })
    }
}

/// Binds every parameter in order; the same code serves both backends.
fn bind_all<'q, DB>(
    mut query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    params: &'q [Value],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<bool>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<f64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<&'q [u8]>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for value in params {
        query = match value {
            Value::Int(v) => query.bind(*v),
            Value::Bool(v) => query.bind(*v),
            Value::Float(v) => query.bind(*v),
            Value::Text(v) => query.bind(v.as_deref()),
            Value::Blob(v) => query.bind(v.as_deref()),
        };
    }
    query
}

/// Turns a driver row into a [`Row`], typing each value by what the database says it is.
fn decode<R>(row: &R) -> Result<Row, StoreError>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i32>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i16>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<bool>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<f64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<Vec<u8>>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let names: Arc<[String]> = row.columns().iter().map(|c| c.name().to_owned()).collect();
    let mut values = Vec::with_capacity(names.len());
    for (index, column) in row.columns().iter().enumerate() {
        let raw = row.try_get_raw(index)?;
        // SQLite types each value (a column of an expression has no declared type), so the
        // value's own type comes first; PostgreSQL's values carry the column's type.
        let type_name = if raw.is_null() {
            column.type_info().name().to_ascii_uppercase()
        } else {
            raw.type_info().name().to_ascii_uppercase()
        };
        let value = match type_name.as_str() {
            // PostgreSQL's 32- and 16-bit columns widen to 64 bits.
            "INT4" => Value::Int(row.try_get::<Option<i32>, _>(index)?.map(i64::from)),
            "INT2" => Value::Int(row.try_get::<Option<i16>, _>(index)?.map(i64::from)),
            "INTEGER" | "INT8" => Value::Int(row.try_get(index)?),
            "BOOLEAN" | "BOOL" => Value::Bool(row.try_get(index)?),
            "REAL" | "FLOAT8" | "FLOAT4" | "DOUBLE PRECISION" | "NUMERIC" => {
                Value::Float(row.try_get(index)?)
            }
            "BLOB" | "BYTEA" => Value::Blob(row.try_get(index)?),
            "NULL" => Value::Text(None),
            _ => Value::Text(row.try_get(index)?),
        };
        values.push(value);
    }
    Ok(Row { names, values })
}
