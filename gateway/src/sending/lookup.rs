//! What a send looks up that other routes look up too: a sender number's opt-out
//! line and a template by id.
use rns_types::template::Template;
use rns_types::{CustomerId, PhoneNumber};

use crate::contacts::is_id;
use crate::error::ApiError;
use crate::AppState;

/// The opt-out number of a registered sender number, allocated on first use (sender
/// numbers registered before opt-out numbers existed get theirs here).
pub async fn opt_out_number_of(
    state: &AppState,
    customer: &CustomerId,
    sender: &PhoneNumber,
) -> Result<PhoneNumber, ApiError> {
    let profile = state.profile(customer).await?;
    if let Some(line) = profile.opt_out_numbers.get(sender) {
        return Ok(line.clone());
    }
    let allocated = state.opt_outs().allocate_line(customer, sender).await?;
    let profile = state
        .directory()
        .update(customer, |profile| {
            if !profile.sender_numbers.contains_key(sender) {
                return Err(ApiError::NotFound("sender number"));
            }
            profile
                .opt_out_numbers
                .entry(sender.clone())
                .or_insert_with(|| allocated.clone());
            Ok(())
        })
        .await?;
    let line = match profile {
        Ok(profile) => profile.opt_out_numbers[sender].clone(),
        Err(error) => {
            state.opt_outs().free_line(&allocated).await;
            return Err(error);
        }
    };
    if line != allocated {
        state.opt_outs().free_line(&allocated).await;
    }
    Ok(line)
}

/// The caller's template `id`, if it exists.
pub async fn find_template(
    state: &AppState,
    customer: &CustomerId,
    id: &str,
) -> Result<Option<Template>, ApiError> {
    if !is_id(id) {
        return Ok(None);
    }
    let book = state
        .templates()
        .get(customer.as_str())
        .await
        .map_err(|error| ApiError::unavailable("templates", error))?;
    Ok(book.and_then(|mut book| book.templates.remove(id)))
}
