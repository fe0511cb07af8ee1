//! Queue and change-stream consumers against the real brokers and databases.
//!
//! One test binary per area (each links the whole server once); every file below is one
//! topic. Run one area with `cargo nextest run -p pushwire-server --test consumers`.

mod consumers_common;

mod cdc_bench;
mod kafka;
mod kafka_avro;
mod mqtt;
mod mqtt5;
mod mysql;
mod mysql_gtid;
mod nats;
mod postgres;
mod postgres_stream;
mod rabbitmq;
mod redis_stream;
mod throughput;
