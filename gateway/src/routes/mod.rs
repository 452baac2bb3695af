//! The customer API, one module per resource.
pub mod customers;
pub mod messages;
pub mod routing;
pub mod sender_numbers;
