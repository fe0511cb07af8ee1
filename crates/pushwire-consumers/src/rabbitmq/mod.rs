//! RabbitMQ source (`lapin`): one queue, prefetch, manual ack after processing, poison
//! messages rejected (`basic.nack`, requeue=false) to the queue's dead-letter exchange.

mod settings;
#[cfg(feature = "rabbitmq")]
mod source;

pub use settings::RabbitMqSettings;
#[cfg(feature = "rabbitmq")]
pub use source::run;
