//! A state database made for one benchmark run, shared by the bench harnesses: a SQLite file in a
//! temp dir, or a fresh database on the local PostgreSQL (dropped by `drop_db`).
// Included by several bench targets (`#[path]`); each uses part of it.
#![allow(dead_code)]

use anyhow::Context;
use sqlx::Connection;

pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
pub const PG_BASE: &str = "postgres://postgres@127.0.0.1:5432";

pub struct StateDb {
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl StateDb {
    pub async fn create(postgres: bool) -> anyhow::Result<StateDb> {
        if postgres {
            StateDb::postgres().await
        } else {
            StateDb::sqlite().await
        }
    }

    pub async fn sqlite() -> anyhow::Result<StateDb> {
        let dir = tempfile::tempdir()?;
        Ok(StateDb {
            url: format!("sqlite://{}", dir.path().join("state.db").display()),
            pg_name: None,
            _dir: Some(dir),
        })
    }

    pub async fn postgres() -> anyhow::Result<StateDb> {
        let name = format!("ltv_bench_{}", uuid::Uuid::new_v4().simple());
        let mut c = sqlx::PgConnection::connect(PG_ADMIN)
            .await
            .context("PostgreSQL at 127.0.0.1:5432 (user postgres)")?;
        sqlx::query(&format!("create database {name}"))
            .execute(&mut c)
            .await?;
        c.close().await?;
        Ok(StateDb {
            url: format!("{PG_BASE}/{name}"),
            pg_name: Some(name),
            _dir: None,
        })
    }

    pub async fn drop_db(&self) {
        if let Some(name) = &self.pg_name {
            if let Ok(mut c) = sqlx::PgConnection::connect(PG_ADMIN).await {
                let sql = format!("drop database if exists {name} with (force)");
                if let Err(e) = sqlx::query(&sql).execute(&mut c).await {
                    eprintln!("warning: cannot drop {name}: {e}");
                }
            }
        }
    }
}
