//! The customer API, one module per resource.
pub mod api_keys;
pub mod blocklist;
pub mod contacts;
pub mod customers;
pub mod groups;
pub mod inbound;
pub mod messages;
pub mod opt_out_lines;
pub mod opt_outs;
pub mod points;
pub mod results;
pub mod routing;
pub mod schedules;
pub mod sender_numbers;
pub mod templates;
pub mod webhook;
