//! What an SMSC's `command_status` on a `submit_sm_resp` means, in one table.
//!
//! | `command_status` | outcome | why |
//! |---|---|---|
//! | `ESME_ROK` (0x00) | accepted | the SMSC took it; its receipt follows |
//! | `ESME_RTHROTTLED` (0x58), `ESME_RMSGQFUL` (0x14) | throttled | the SMSC asks us to slow down: waited out under the carrier's shared rate, never a failure |
//! | `ESME_RSYSERR` (0x08), `ESME_RSUBMITFAIL` (0x45), `ESME_RX_T_APPN` (0x64), `ESME_RINVBNDSTS` (0x04), `ESME_RUNKNOWNERR` (0xFF), `ESME_RDELIVERYFAILURE` (0xFE) | transient | the SMSC could not take it now; it did not take it: the same carrier again |
//! | anything else (e.g. `ESME_RINVDSTADR` 0x0B, `ESME_RINVSRCADR` 0x0A, `ESME_RINVMSGLEN` 0x01, `ESME_RX_P_APPN` 0x65, `ESME_RX_R_APPN` 0x66) | rejected | refused for good, with the status in the reason |
use rusmpp::CommandStatus;

use crate::outcome::SubmitOutcome;

/// The outcome of a `submit_sm` the SMSC answered with `status` (not `ESME_ROK`).
pub fn refused(status: CommandStatus) -> SubmitOutcome {
    let reason = format!("SMPP {status:?} (0x{:08X})", u32::from(status));
    match status {
        CommandStatus::EsmeRthrottled | CommandStatus::EsmeRmsgqful => SubmitOutcome::Throttled {
            reason,
            retry_after: None,
        },
        CommandStatus::EsmeRsyserr
        | CommandStatus::EsmeRsubmitfail
        | CommandStatus::EsmeRxTAppn
        | CommandStatus::EsmeRinvbndsts
        | CommandStatus::EsmeRunknownerr
        | CommandStatus::EsmeRdeliveryfailure => SubmitOutcome::failed_for_now(reason),
        _ => SubmitOutcome::Rejected { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_not_failure_and_only_permanent_errors_reject() {
        assert!(matches!(
            refused(CommandStatus::EsmeRthrottled),
            SubmitOutcome::Throttled { .. }
        ));
        assert!(matches!(
            refused(CommandStatus::EsmeRmsgqful),
            SubmitOutcome::Throttled { .. }
        ));
        assert!(matches!(
            refused(CommandStatus::EsmeRsyserr),
            SubmitOutcome::Transient { .. }
        ));
        let SubmitOutcome::Rejected { reason } = refused(CommandStatus::EsmeRinvdstadr) else {
            panic!("an invalid destination is refused for good");
        };
        assert!(reason.contains("0x0000000B"), "{reason}");
    }
}
