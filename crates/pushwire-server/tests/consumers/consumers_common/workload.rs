//! A deterministic CDC workload shared by the PostgreSQL and MariaDB change-capture suites.

#![allow(dead_code)]

use serde_json::json;

/// Changes in a CDC kill test.
pub const CDC_CHANGES: usize = 10_000;
/// Of which one transaction this big, during which the node is killed.
pub const CDC_BIG_TXN: usize = 3_000;

/// A deterministic workload: transactions of INSERT / UPDATE / DELETE statements over 3
/// tables, one row change each; the expected change list per table in commit order
/// (`[op, id, n]`; for a delete `n` is the old value, or null when only the key is logged).
pub struct Workload {
    seed: u64,
    next_id: i64,
    n: i64,
    live: [Vec<i64>; 3],
    /// Current `n` of each live row.
    current: std::collections::HashMap<i64, i64>,
    /// A delete's row carries the whole old row (MySQL `binlog_row_image = FULL`), not only
    /// the key (PostgreSQL's default replica identity).
    full_deletes: bool,
    /// Expected changes per table.
    pub expected: [Vec<serde_json::Value>; 3],
}

impl Workload {
    pub fn new(full_deletes: bool) -> Workload {
        Workload {
            seed: 0x9e37_79b9_7f4a_7c15,
            next_id: 0,
            n: 0,
            live: Default::default(),
            current: Default::default(),
            full_deletes,
            expected: Default::default(),
        }
    }

    pub fn rand(&mut self, below: u64) -> u64 {
        self.seed = self
            .seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.seed >> 33) % below
    }

    /// One transaction of `size` changes as a single SQL string.
    pub fn transaction(&mut self, tables: &[String], size: usize) -> String {
        let mut sql = String::from("BEGIN;");
        for _ in 0..size {
            let t = self.rand(3) as usize;
            self.n += 1;
            let n = self.n;
            let roll = self.rand(10);
            if self.live[t].is_empty() || roll < 5 {
                self.next_id += 1;
                let id = self.next_id;
                self.live[t].push(id);
                self.current.insert(id, n);
                sql += &format!(
                    "INSERT INTO {} (id, n, note) VALUES ({id}, {n}, 'row {id}');",
                    tables[t]
                );
                self.expected[t].push(json!(["insert", id, n]));
            } else if roll < 8 {
                let i = self.rand(self.live[t].len() as u64) as usize;
                let id = self.live[t][i];
                self.current.insert(id, n);
                sql += &format!("UPDATE {} SET n = {n} WHERE id = {id};", tables[t]);
                self.expected[t].push(json!(["update", id, n]));
            } else {
                let i = self.rand(self.live[t].len() as u64) as usize;
                let id = self.live[t].swap_remove(i);
                sql += &format!("DELETE FROM {} WHERE id = {id};", tables[t]);
                let old = self.current.remove(&id);
                let n = if self.full_deletes {
                    json!(old)
                } else {
                    json!(null)
                };
                self.expected[t].push(json!(["delete", id, n]));
            }
        }
        sql + "COMMIT;"
    }
}

/// A [`Workload`] planned up front as a list of transactions (the subscribers need their
/// counts before the first one runs).
pub struct Plan {
    /// The workload: its `expected` changes per table.
    pub workload: Workload,
    /// The transactions in commit order (`BEGIN; …; COMMIT;` strings).
    pub txns: Vec<String>,
    /// Changes planned so far.
    pub planned: usize,
    tables: Vec<String>,
}

impl Plan {
    /// An empty plan over `tables` (see [`Workload::new`] for `full_deletes`).
    pub fn new(full_deletes: bool, tables: &[String]) -> Plan {
        Plan {
            workload: Workload::new(full_deletes),
            txns: Vec::new(),
            planned: 0,
            tables: tables.to_vec(),
        }
    }

    /// Adds transactions of 1-20 changes until at least `until` changes are planned.
    pub fn small_until(&mut self, until: usize) {
        while self.planned < until {
            let size = 1 + self.workload.rand(20) as usize;
            self.push(size);
        }
    }

    /// Adds transactions of 1-20 changes, the last one cut, until exactly `until` are planned.
    pub fn small_until_exactly(&mut self, until: usize) {
        while self.planned < until {
            let size = (1 + self.workload.rand(20) as usize).min(until - self.planned);
            self.push(size);
        }
    }

    /// Adds one transaction of `size` changes; its index.
    pub fn push(&mut self, size: usize) -> usize {
        self.txns
            .push(self.workload.transaction(&self.tables, size));
        self.planned += size;
        self.txns.len() - 1
    }

    /// How many changes each table's subscriber expects.
    pub fn counts(&self) -> Vec<String> {
        let expected = &self.workload.expected;
        expected.iter().map(|e| e.len().to_string()).collect()
    }
}
