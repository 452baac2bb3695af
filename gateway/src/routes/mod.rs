//! The customer API, one module per resource.
pub mod customers;
pub mod messages;
pub mod points;
pub mod routing;
pub mod sender_numbers;
