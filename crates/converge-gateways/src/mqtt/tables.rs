//! The MQTT gateway's tables: registered devices and their telemetry samples.

use converge_service::Result;
use converge_store::{Migration, Row, Statement, Tables};

/// The tables, as migrations of the component `mqtt`. They are created only where missing,
/// since databases made before the gateways owned their tables have them (with
/// `secret_hash` added by an older migration).
pub const MIGRATIONS: &[Migration] = &[Migration::both(
    1,
    "
        CREATE TABLE IF NOT EXISTS iot_devices (
            device_id TEXT PRIMARY KEY NOT NULL, room_id TEXT NOT NULL, user_id TEXT NOT NULL,
            alerts TEXT NOT NULL, created_by TEXT NOT NULL, created_ts BIGINT NOT NULL,
            secret_hash TEXT);
        CREATE INDEX IF NOT EXISTS iot_devices_room ON iot_devices (room_id);
        CREATE TABLE IF NOT EXISTS iot_telemetry (
            device_id TEXT NOT NULL, ts BIGINT NOT NULL, payload TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS iot_telemetry_device ON iot_telemetry (device_id, ts);",
)];

/// An IoT device bound to a room.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceRow {
    pub device_id: String,
    pub room_id: String,
    pub user_id: String,
    /// The device's alert rules, as JSON.
    pub alerts: String,
    /// SHA-256 (hex) of the device's password for the embedded MQTT broker.
    pub secret_hash: Option<String>,
    pub created_by: String,
    pub created_ts: i64,
}

/// One telemetry sample: when it arrived (ms) and its JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TelemetryRow {
    pub device_id: String,
    pub ts: i64,
    pub payload: String,
}

const DEVICE_COLUMNS: &str =
    "device_id, room_id, user_id, alerts, secret_hash, created_by, created_ts";

fn device(row: &Row) -> Result<DeviceRow> {
    Ok(DeviceRow {
        device_id: row.get("device_id")?,
        room_id: row.get("room_id")?,
        user_id: row.get("user_id")?,
        alerts: row.get("alerts")?,
        secret_hash: row.get("secret_hash")?,
        created_by: row.get("created_by")?,
        created_ts: row.get("created_ts")?,
    })
}

/// The MQTT gateway's rows, over its tables.
#[derive(Clone)]
pub struct Store {
    tables: Tables,
}

impl Store {
    pub fn new(tables: Tables) -> Self {
        Self { tables }
    }

    pub async fn insert_device(&self, device: &DeviceRow) -> Result<()> {
        self.tables
            .execute(
                "INSERT INTO iot_devices (device_id, room_id, user_id, alerts, secret_hash, \
                 created_by, created_ts) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    (&device.device_id).into(),
                    (&device.room_id).into(),
                    (&device.user_id).into(),
                    (&device.alerts).into(),
                    (&device.secret_hash).into(),
                    (&device.created_by).into(),
                    device.created_ts.into(),
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn device(&self, device_id: &str) -> Result<Option<DeviceRow>> {
        let sql = format!("SELECT {DEVICE_COLUMNS} FROM iot_devices WHERE device_id = $1");
        let row = self.tables.query_opt(&sql, &[device_id.into()]).await?;
        row.as_ref().map(device).transpose()
    }

    /// Every device, or one room's, oldest first.
    pub async fn devices(&self, room_id: Option<&str>) -> Result<Vec<DeviceRow>> {
        let sql = format!(
            "SELECT {DEVICE_COLUMNS} FROM iot_devices WHERE ($1 IS NULL OR room_id = $1) \
             ORDER BY created_ts, device_id"
        );
        let rows = self.tables.query(&sql, &[room_id.into()]).await?;
        rows.iter().map(device).collect()
    }

    pub async fn set_alerts(&self, device_id: &str, alerts: &str) -> Result<()> {
        self.tables
            .execute(
                "UPDATE iot_devices SET alerts = $1 WHERE device_id = $2",
                &[alerts.into(), device_id.into()],
            )
            .await?;
        Ok(())
    }

    /// Deletes a device and its telemetry; `false` if there was none.
    pub async fn delete_device(&self, device_id: &str) -> Result<bool> {
        let changed = self
            .tables
            .transaction(&[
                Statement::new(
                    "DELETE FROM iot_telemetry WHERE device_id = $1",
                    vec![device_id.into()],
                ),
                Statement::new(
                    "DELETE FROM iot_devices WHERE device_id = $1",
                    vec![device_id.into()],
                ),
            ])
            .await?;
        Ok(changed[1] == 1)
    }

    /// Appends telemetry samples, then keeps only the newest `keep` of each device named,
    /// in one transaction.
    pub async fn append_telemetry(&self, samples: &[TelemetryRow], keep: u32) -> Result<()> {
        let mut devices: Vec<&str> = samples.iter().map(|s| s.device_id.as_str()).collect();
        devices.sort_unstable();
        devices.dedup();
        let mut statements: Vec<Statement> = samples
            .iter()
            .map(|sample| {
                Statement::new(
                    "INSERT INTO iot_telemetry (device_id, ts, payload) VALUES ($1, $2, $3)",
                    vec![
                        (&sample.device_id).into(),
                        sample.ts.into(),
                        (&sample.payload).into(),
                    ],
                )
            })
            .collect();
        for device in devices {
            statements.push(Statement::new(
                "DELETE FROM iot_telemetry WHERE device_id = $1 AND ts < \
                 (SELECT ts FROM iot_telemetry WHERE device_id = $1 ORDER BY ts DESC \
                 LIMIT 1 OFFSET $2)",
                vec![device.into(), i64::from(keep.saturating_sub(1)).into()],
            ));
        }
        self.tables.transaction(&statements).await?;
        Ok(())
    }

    /// A device's samples with `from <= ts <= to`, oldest first, at most `limit`.
    pub async fn telemetry(
        &self,
        device_id: &str,
        from: i64,
        to: i64,
        limit: u32,
    ) -> Result<Vec<TelemetryRow>> {
        let rows = self
            .tables
            .query(
                "SELECT device_id, ts, payload FROM iot_telemetry \
                 WHERE device_id = $1 AND ts >= $2 AND ts <= $3 ORDER BY ts LIMIT $4",
                &[
                    device_id.into(),
                    from.into(),
                    to.into(),
                    i64::from(limit).into(),
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(TelemetryRow {
                    device_id: row.get("device_id")?,
                    ts: row.get("ts")?,
                    payload: row.get("payload")?,
                })
            })
            .collect()
    }
}
