//! PostgreSQL: a server, driven asynchronously by tokio-postgres, over TLS as the URL asks (`tls`).

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use tokio_postgres::types::{ToSql, Type};
use tracing::warn;

use super::backend::{Backend, Statement};
use super::tls::{self, Tls};
use super::{RepoError, Result, Row, Value};

pub struct Postgres {
    /// The URL with any password hidden, for errors.
    db: String,
    client: tokio_postgres::Client,
}

impl Postgres {
    pub async fn connect(url: &str, db: String) -> Result<Postgres> {
        let (url, params) = tls::split(url);
        let config: tokio_postgres::Config =
            url.parse().map_err(|source| RepoError::Postgres { db: db.clone(), source })?;
        let tls = Tls::new(&params).map_err(|cause| RepoError::Tls { at: tls::address(&config, None), cause })?;
        let (client, connection) =
            tls.connect(&config).await.map_err(|source| match tls.explain(&source, &config) {
                Some((at, cause)) => RepoError::Tls { at, cause },
                None => RepoError::Postgres { db: db.clone(), source },
            })?;
        let name = db.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                warn!(db = %name, error = %e, "PostgreSQL connection ended");
            }
        });
        Ok(Postgres { db, client })
    }
}

fn error(db: &str, source: tokio_postgres::Error) -> RepoError {
    if source.is_closed() {
        return RepoError::Closed { db: db.to_string() };
    }
    RepoError::Postgres { db: db.to_string(), source }
}

impl Backend for Postgres {
    fn transaction(&mut self, statements: Vec<Statement>) -> BoxFuture<'_, Result<Vec<u64>>> {
        async move {
            let err = |source| error(&self.db, source);
            // Dropped unfinished (an error below), the transaction is rolled back.
            let tx = self.client.transaction().await.map_err(err)?;
            let mut changed = Vec::with_capacity(statements.len());
            for s in &statements {
                let n = if s.wanted(&changed) { tx.execute(&s.sql, &to_pg(&s.params)).await.map_err(err)? } else { 0 };
                changed.push(n);
            }
            tx.commit().await.map_err(err)?;
            Ok(changed)
        }
        .boxed()
    }

    fn query(&mut self, sql: String, params: Vec<Value>) -> BoxFuture<'_, Result<Vec<Row>>> {
        async move {
            let rows = self.client.query(&sql, &to_pg(&params)).await.map_err(|e| error(&self.db, e))?;
            let Some(first) = rows.first() else { return Ok(Vec::new()) };
            let columns: Arc<[String]> = first.columns().iter().map(|c| c.name().to_string()).collect();
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let mut values = Vec::with_capacity(columns.len());
                for (i, col) in row.columns().iter().enumerate() {
                    values.push(from_pg(row, i, col.type_()).map_err(|e| match e {
                        Conversion::Driver(source) => error(&self.db, source),
                        Conversion::Unsupported => {
                            RepoError::ColumnType { column: col.name().to_string(), ty: col.type_().to_string() }
                        }
                    })?);
                }
                out.push(Row::new(columns.clone(), values));
            }
            Ok(out)
        }
        .boxed()
    }

    fn serial_key(&self) -> &'static str {
        "BIGSERIAL PRIMARY KEY"
    }

    fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// The parameters as tokio-postgres takes them. A NULL is typed as TEXT: only TEXT columns are nullable.
fn to_pg(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    static NULL: Option<String> = None;
    values
        .iter()
        .map(|v| -> &(dyn ToSql + Sync) {
            match v {
                Value::Int(i) => i,
                Value::Real(r) => r,
                Value::Text(t) => t,
                Value::Null => &NULL,
            }
        })
        .collect()
}

enum Conversion {
    Driver(tokio_postgres::Error),
    Unsupported,
}

fn from_pg(row: &tokio_postgres::Row, i: usize, ty: &Type) -> Result<Value, Conversion> {
    let v = if *ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(i).map(|o| o.map(Value::Int))
    } else if *ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(i).map(|o| o.map(|x| Value::Int(x.into())))
    } else if *ty == Type::FLOAT8 {
        row.try_get::<_, Option<f64>>(i).map(|o| o.map(Value::Real))
    } else if *ty == Type::FLOAT4 {
        row.try_get::<_, Option<f32>>(i).map(|o| o.map(|x| Value::Real(f64::from(x))))
    } else if *ty == Type::TEXT || *ty == Type::VARCHAR {
        row.try_get::<_, Option<String>>(i).map(|o| o.map(Value::Text))
    } else {
        return Err(Conversion::Unsupported);
    };
    v.map(|o| o.unwrap_or(Value::Null)).map_err(Conversion::Driver)
}
