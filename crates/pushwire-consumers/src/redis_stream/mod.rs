//! Redis Streams source (`redis`): consumer group, `XREADGROUP`, `XACK` after processing,
//! `XAUTOCLAIM` for entries stuck with a crashed consumer, poison entries `XADD`ed to a
//! dead-letter stream then acknowledged.

mod settings;
#[cfg(feature = "redis_stream")]
mod source;

pub use settings::RedisStreamSettings;
#[cfg(feature = "redis_stream")]
pub use source::run;
