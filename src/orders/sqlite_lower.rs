//! A Unicode `lower()` for the order DB's SQLite connections: SQLite's own folds ASCII only, so
//! `lower(email) = :email` would never match `JOSÉ@…` against the normalised `josé@…`.
//!
//! Registered on every pooled connection (`after_connect`) through the raw handle sqlx exposes;
//! an application function of the same name and arity overrides the built-in one.

use std::ffi::{c_char, c_int};

use libsqlite3_sys as ffi;
use sqlx::sqlite::SqliteConnection;

/// Replaces `lower(X)` on this connection with Rust's Unicode lower-casing (what
/// [`crate::domain::CustomerEmail`] applies to the email the query receives).
pub(super) async fn register(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let db = handle.as_raw_handle().as_ptr();
    // SAFETY: `db` is the live connection handle, held locked for this call; the name is a
    // NUL-terminated static string; `unicode_lower` matches SQLite's scalar-function signature and
    // keeps no state (no user data pointer, no destructor).
    let rc = unsafe {
        ffi::sqlite3_create_function_v2(
            db,
            c"lower".as_ptr(),
            1,
            ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC,
            std::ptr::null_mut(),
            Some(unicode_lower),
            None,
            None,
            None,
        )
    };
    if rc == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(sqlx::Error::Protocol(format!(
            "cannot register a Unicode lower() on the SQLite order DB (SQLite error {rc})"
        )))
    }
}

/// `lower(X)`: NULL stays NULL, anything else is read as UTF-8 text and lower-cased.
unsafe extern "C" fn unicode_lower(
    ctx: *mut ffi::sqlite3_context,
    argc: c_int,
    argv: *mut *mut ffi::sqlite3_value,
) {
    // SAFETY: SQLite passes `argc` valid values in `argv` (registered with arity 1), and the text
    // pointer it returns stays valid until the value is changed, which nothing here does. The
    // result is copied by SQLite (SQLITE_TRANSIENT) before `lowered` is dropped.
    unsafe {
        if argc != 1 || argv.is_null() {
            ffi::sqlite3_result_null(ctx);
            return;
        }
        let value = *argv;
        if ffi::sqlite3_value_type(value) == ffi::SQLITE_NULL {
            ffi::sqlite3_result_null(ctx);
            return;
        }
        let text = ffi::sqlite3_value_text(value);
        let len = usize::try_from(ffi::sqlite3_value_bytes(value)).unwrap_or(0);
        if text.is_null() {
            ffi::sqlite3_result_null(ctx);
            return;
        }
        let bytes = std::slice::from_raw_parts(text, len);
        let lowered = String::from_utf8_lossy(bytes).to_lowercase();
        // Lower-casing can lengthen text; past SQLite's length limit, report rather than wrap.
        let Ok(n) = c_int::try_from(lowered.len()) else {
            ffi::sqlite3_result_error_toobig(ctx);
            return;
        };
        ffi::sqlite3_result_text(
            ctx,
            lowered.as_ptr().cast::<c_char>(),
            n,
            ffi::SQLITE_TRANSIENT(),
        );
    }
}
