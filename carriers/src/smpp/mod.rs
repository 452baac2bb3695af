//! SMPP 3.4: carriers that speak their SMSC's own protocol, with RNS as the ESME.
//!
//! The PDUs and the session (sequence numbers, `enquire_link` every interval, answers
//! matched to requests, timeouts) are the `rusmppc` client's; this module keeps
//! `sessions` binds per carrier, submits through them and turns what the SMSC says
//! into the outcomes and receipts the rest of RNS knows.
//!
//! - **Sessions.** Each session connects, binds as a transceiver (`system_id`,
//!   `password`, `system_type`, interface version 3.4) and, once bound, takes submits;
//!   with `bind = "transmitter_and_receiver"` it is two connections, a transmitter
//!   for submits and a receiver for receipts and messages from handsets.
//!   A lost connection, a refused bind or an unanswered `enquire_link` unbinds it; it
//!   binds again with a growing back-off (0.5 s doubling to 30 s). A submit that finds
//!   no session bound waits up to the request timeout for one (a dropped bind is
//!   routine and soon made again); then it is a transient failure (never sent), which
//!   opens the carrier's circuit; its recovery probe asks whether a session is bound again, so a
//!   successful rebind closes it. At shutdown each session unbinds after the workers
//!   have finished.
//! - **Submits.** Up to `window` submits per session await their `submit_sm_resp` at
//!   once (a message's parts count one each). Text is UCS-2 (`data_coding` 0x08) unless `data_coding = "gsm7_when_ascii"`
//!   and it is plain ASCII; a text longer than one part is split into concatenated
//!   parts (UDH with a 16-bit reference), all on the same session. A delivery receipt
//!   is asked for on every part (`registered_delivery`); the last part's message id
//!   is the carrier reference, and the message is delivered when every part's receipt
//!   says so ([`crate::receipts`]).
//!   `command_status` is read by [`status`]. No answer within the request timeout is
//!   ambiguous, and SMPP has no client reference by which the SMSC could recognise a
//!   repeat, so such a message is never submitted again (nor to another carrier): it
//!   ends `unknown`, charged ([`crate::http::Submitter::recognises_repeats`]).
//! - **Receipts.** A `deliver_sm` receipt ([`receipt`]) is stored in `RECEIPTS`
//!   before its `deliver_sm_resp` goes back (`ESME_RX_T_APPN` if it could not be
//!   stored, so the SMSC sends it again), and flows on like an HTTP carrier's receipt
//!   ([`crate::receipts`]). Receipts whose state is not final are acknowledged and
//!   left to the deadline. A message from a handset (not a receipt) is stored on
//!   `inbound.<carrier>` before its `deliver_sm_resp` the same way, its text read by
//!   its `data_coding` (UCS-2, KS C 5601, Latin-1), for the gateway to record
//!   ([`rns_types::inbound`]).
pub mod coding;
pub mod receipt;
pub mod status;

use std::str::FromStr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::Context;
use bytes::Bytes;
use futures::StreamExt;
use rns_nats::{publish_all, Outbound};
use rns_service::Secret;
use rns_types::inbound::{Inbound, InboundMessage};
use rns_types::subjects::{inbound_subject, message_ids};
use rns_types::CarrierId;
use rusmpp::extra::concatenation::SubmitSmMultipartExt;
use rusmpp::pdus::{BindReceiver, BindTransceiver, BindTransmitter, DeliverSmResp, SubmitSm};
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{
    EsmClass, InterfaceVersion, IntermediateNotification, MCDeliveryReceipt, Npi,
    RegisteredDelivery, SmeOriginatedAcknowledgement, Ton,
};
use rusmpp::{CommandStatus, Pdu};
use rusmppc::{Client, ConnectionBuilder, Event};
use serde::Deserialize;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::http::SubmitRequest;
use crate::outcome::SubmitOutcome;
use crate::smpp::coding::Coding;
use crate::smpp::receipt::Delivered;
use rusmpp::extra::encoding::gsm7bit::Gsm7BitUnpacked;
use rusmpp::extra::encoding::Encoder;
use rusmpp::extra::fallback::Fallback;
use rusmpp::tlvs::MessageSubmissionRequestTlvValue;
use rusmpp::types::AnyOctetString;
use rusmpp::values::MessagePayload;

/// How text is coded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmppDataCoding {
    /// UCS-2 (0x08) always: every Korean text needs it.
    #[default]
    Ucs2,
    /// GSM 7-bit (unpacked) for text it can carry, UCS-2 otherwise.
    Gsm7WhenAscii,
    /// EUC-KR (KS C 5601, 0x0E) for text it can carry, UCS-2 otherwise
    /// ([`coding`]).
    EucKr,
}

/// A carrier's SMPP settings (`smpp = { … }` in its `[[carriers]]` entry).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmppSettings {
    pub host: String,
    pub port: u16,
    pub system_id: String,
    pub password: Secret,
    #[serde(default)]
    pub system_type: String,
    /// Binds kept open at once.
    #[serde(default = "default_sessions")]
    pub sessions: usize,
    /// Submits awaiting their answer at once, per session.
    #[serde(default = "default_window")]
    pub window: usize,
    #[serde(default = "default_enquire_link_seconds")]
    pub enquire_link_seconds: u64,
    /// Connect with TLS (`smpps://`).
    #[serde(default)]
    pub tls: bool,
    /// With TLS: a PEM file of the certificate authority that signed the SMSC's
    /// certificate (a carrier's private CA); the public web roots when absent.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    #[serde(default)]
    pub data_coding: SmppDataCoding,
    #[serde(default)]
    pub bind: SmppBind,
    #[serde(default)]
    pub long_messages: SmppLongMessages,
}

/// How a text longer than one short message travels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmppLongMessages {
    /// Concatenated `submit_sm`s, each with a UDH, each with its own receipt.
    #[default]
    Udh,
    /// One `submit_sm` with the whole text in the `message_payload` TLV (the SMSC
    /// splits it), where a carrier prefers that.
    MessagePayload,
}

/// How each session binds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmppBind {
    /// One transceiver connection: submits and receipts on it.
    #[default]
    Transceiver,
    /// A transmitter connection for submits and a receiver connection for receipts
    /// and messages from handsets (for SMSCs without transceivers).
    TransmitterAndReceiver,
}

/// What one connection is bound as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Transceiver,
    Transmitter,
    Receiver,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Transceiver => "transceiver",
            Role::Transmitter => "transmitter",
            Role::Receiver => "receiver",
        }
    }
}

fn default_sessions() -> usize {
    1
}

fn default_window() -> usize {
    10
}

fn default_enquire_link_seconds() -> u64 {
    30
}

/// The longest wait between two binds of a session.
const LONGEST_REBIND_DELAY: Duration = Duration::from_secs(30);

/// An SMPP carrier: its sessions and what submits through them; cheap to clone.
#[derive(Clone)]
pub struct SmppCarrier(Arc<Inner>);

struct Inner {
    carrier: CarrierId,
    sessions: Vec<Session>,
    next: AtomicUsize,
    /// Submits one session may have awaiting their answer.
    window: usize,
    data_coding: SmppDataCoding,
    long_messages: SmppLongMessages,
    reference: AtomicU16,
    /// How long a submit waits for a session to bind when none is (a dropped bind is
    /// routine: a session binds again within a second).
    bind_wait: Duration,
}

/// One session as submits see it.
struct Session {
    /// Its client while it is bound.
    client: watch::Receiver<Option<Client>>,
    /// Its window: a permit per submit awaiting its answer.
    window: Arc<Semaphore>,
}

impl std::fmt::Debug for SmppCarrier {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SmppCarrier")
            .field("carrier", &self.0.carrier)
            .finish_non_exhaustive()
    }
}

impl SmppCarrier {
    /// Starts `carrier`'s sessions, which bind and rebind until `shutdown`, and
    /// store the receipts they receive in `jetstream`. Returns the carrier and the
    /// sessions' tasks (each ends after unbinding).
    pub fn start(
        carrier: CarrierId,
        settings: &SmppSettings,
        password: String,
        response_timeout: Duration,
        jetstream: Context,
        shutdown: CancellationToken,
    ) -> (Self, Vec<tokio::task::JoinHandle<()>>) {
        let count = settings.sessions.max(1);
        let mut sessions = Vec::with_capacity(count);
        let mut tasks = Vec::with_capacity(count);
        let shared = Arc::new(SessionSettings {
            carrier: carrier.clone(),
            url: format!(
                "{}://{}:{}",
                if settings.tls { "smpps" } else { "smpp" },
                settings.host,
                settings.port
            ),
            system_id: settings.system_id.clone(),
            password,
            system_type: settings.system_type.clone(),
            enquire_link: Duration::from_secs(settings.enquire_link_seconds.max(1)),
            response_timeout,
            jetstream,
            tls: match (&settings.ca_file, settings.tls) {
                (Some(ca_file), true) => tls_trusting(ca_file).map(Some),
                _ => Ok(None),
            },
        });
        let window = settings.window.max(1);
        for index in 0..count {
            let (sender, receiver) = watch::channel(None);
            sessions.push(Session {
                client: receiver,
                window: Arc::new(Semaphore::new(window)),
            });
            let submitting = match settings.bind {
                SmppBind::Transceiver => Role::Transceiver,
                SmppBind::TransmitterAndReceiver => {
                    tasks.push(tokio::spawn(keep_session(
                        shared.clone(),
                        index,
                        Role::Receiver,
                        None,
                        shutdown.clone(),
                    )));
                    Role::Transmitter
                }
            };
            tasks.push(tokio::spawn(keep_session(
                shared.clone(),
                index,
                submitting,
                Some(sender),
                shutdown.clone(),
            )));
        }
        let carrier = Self(Arc::new(Inner {
            carrier,
            sessions,
            next: AtomicUsize::new(0),
            window,
            data_coding: settings.data_coding,
            long_messages: settings.long_messages,
            reference: AtomicU16::new(rand::random()),
            bind_wait: response_timeout,
        }));
        (carrier, tasks)
    }

    /// Whether a session is bound: the recovery probe's question.
    pub async fn probe(&self) -> Result<(), String> {
        match self.bound() {
            Some(_) => Ok(()),
            None => Err("no SMPP session is bound".to_owned()),
        }
    }

    /// A bound session's client and window, taking sessions in turn.
    fn bound(&self) -> Option<(Client, Arc<Semaphore>)> {
        let sessions = &self.0.sessions;
        let start = self.0.next.fetch_add(1, Ordering::Relaxed);
        (0..sessions.len()).find_map(|offset| {
            let session = &sessions[(start + offset) % sessions.len()];
            let client = session
                .client
                .borrow()
                .as_ref()
                .filter(|client| client.is_active())
                .cloned()?;
            Some((client, session.window.clone()))
        })
    }

    /// A bound session, waiting up to `wait` for one to bind when none is.
    async fn bound_within(&self, wait: Duration) -> Option<(Client, Arc<Semaphore>)> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut receivers: Vec<_> = self
            .0
            .sessions
            .iter()
            .map(|session| session.client.clone())
            .collect();
        loop {
            if let Some(bound) = self.bound() {
                return Some(bound);
            }
            let changes = receivers
                .iter_mut()
                .map(|receiver| Box::pin(receiver.changed()));
            match tokio::time::timeout_at(deadline, futures::future::select_all(changes)).await {
                Ok((Ok(()), _, _)) => continue,
                // Timed out, or the sessions are gone (shutdown).
                Ok((Err(_), _, _)) | Err(_) => return self.bound(),
            }
        }
    }

    /// Submits one message: all its parts through one bound session.
    pub async fn submit(&self, request: &SubmitRequest) -> SubmitOutcome {
        let parts = match self.parts(request) {
            Ok(parts) => parts,
            Err(reason) => return SubmitOutcome::Rejected { reason },
        };
        let Some((client, window)) = self.bound_within(self.0.bind_wait).await else {
            return SubmitOutcome::unreachable("connection failed: no SMPP session is bound");
        };
        // A message of more parts than the window takes the whole window.
        let count = u32::try_from(parts.len().min(self.0.window)).unwrap_or(1);
        let Ok(_permits) = window.acquire_many_owned(count).await else {
            return SubmitOutcome::failed_for_now("the SMPP carrier is stopping");
        };
        let total = parts.len();
        let mut references = Vec::with_capacity(total);
        for (index, part) in parts.into_iter().enumerate() {
            // A session that closed while this waited for its window: nothing was
            // written, so the message may go again (a close racing the write below
            // leaves it ambiguous).
            if index == 0 && !client.is_active() {
                return SubmitOutcome::unreachable(
                    "connection failed: the SMPP session closed before the submit",
                );
            }
            match client.submit_sm(part).await {
                Ok(answer) => references.push(answer.message_id().to_string()),
                Err(error) => return self.failed(error, index, total),
            }
        }
        match references.pop() {
            Some(carrier_reference) => SubmitOutcome::Accepted {
                carrier_reference,
                earlier_parts: references,
            },
            None => SubmitOutcome::Rejected {
                reason: "the message has no parts".to_owned(),
            },
        }
    }

    /// The outcome of part `index` (of `total`) failing with `error`. Once an earlier
    /// part was taken the message is partly at the carrier: only it can tell, so the
    /// outcome is ambiguous.
    fn failed(&self, error: rusmppc::error::Error, index: usize, total: usize) -> SubmitOutcome {
        let outcome = match error {
            rusmppc::error::Error::UnexpectedResponse { response } => {
                status::refused(response.status())
            }
            // The submit_sm may have been written before the session closed: the
            // SMSC may have it (the client cannot tell which), so it is not made again.
            rusmppc::error::Error::ConnectionClosed
            | rusmppc::error::Error::ConnectionClosedByPeer => SubmitOutcome::Ambiguous {
                reason: "the SMPP session closed before the SMSC answered".to_owned(),
            },
            rusmppc::error::Error::Encode(error) => SubmitOutcome::Rejected {
                reason: format!("cannot encode the submit: {error}"),
            },
            other => SubmitOutcome::Ambiguous {
                reason: format!("no SMPP answer: {other}"),
            },
        };
        if index == 0 || matches!(outcome, SubmitOutcome::Ambiguous { .. }) {
            return outcome;
        }
        SubmitOutcome::Ambiguous {
            reason: format!(
                "part {} of {total} failed after the first was taken: {outcome:?}",
                index + 1
            ),
        }
    }

    /// One `submit_sm` carrying the whole text in `message_payload`.
    fn with_payload(&self, mut submit: SubmitSm, text: &str) -> Result<SubmitSm, String> {
        let coded = |error: String| format!("cannot code the text: {error}");
        let (bytes, data_coding) = match self.0.data_coding {
            SmppDataCoding::Gsm7WhenAscii if text.is_ascii() => {
                Fallback::new(Gsm7BitUnpacked::new(), Coding::Utf16)
                    .encode(text)
                    .map_err(|error| coded(error.to_string()))?
            }
            SmppDataCoding::EucKr => Fallback::new(Coding::EucKr, Coding::Utf16)
                .encode(text)
                .map_err(|error| coded(error.to_string()))?,
            SmppDataCoding::Ucs2 | SmppDataCoding::Gsm7WhenAscii => Coding::Utf16
                .encode(text)
                .map_err(|error| coded(error.to_string()))?,
        };
        submit.data_coding = data_coding;
        submit.push_tlv(MessageSubmissionRequestTlvValue::MessagePayload(
            MessagePayload::new(AnyOctetString::from_vec(bytes)),
        ));
        Ok(submit)
    }

    /// The `submit_sm`s of a message, split and coded; a receipt is asked for on each.
    fn parts(&self, request: &SubmitRequest) -> Result<Vec<SubmitSm>, String> {
        let address = |value: &str| {
            COctetString::from_str(value).map_err(|error| format!("address {value:?}: {error}"))
        };
        let text = match &request.subject {
            Some(subject) if !subject.is_empty() => format!("{subject}\n{}", request.text),
            _ => request.text.clone(),
        };
        let base = SubmitSm::builder()
            .source_addr_ton(Ton::Unknown)
            .source_addr_npi(Npi::Unknown)
            .source_addr(address(&request.from)?)
            .dest_addr_ton(Ton::Unknown)
            .dest_addr_npi(Npi::Unknown)
            .destination_addr(address(&request.to)?)
            .esm_class(EsmClass::default())
            // Every part (and a message_payload submit) asks for its receipt.
            .registered_delivery(receipt_requested())
            .short_message(OctetString::empty())
            .build();
        if self.0.long_messages == SmppLongMessages::MessagePayload {
            return self.with_payload(base, &text).map(|submit| vec![submit]);
        }
        let reference = self.0.reference.fetch_add(1, Ordering::Relaxed);
        let split = |error: String| format!("cannot split the text: {error}");
        let multipart = base.multipart(&text).reference_u16(reference);
        let parts = match self.0.data_coding {
            SmppDataCoding::Gsm7WhenAscii if text.is_ascii() => multipart
                .gsm7bit_unpacked()
                .fallback(Coding::Utf16)
                .build()
                .map_err(|error| split(error.to_string()))?,
            SmppDataCoding::EucKr => multipart
                .encoder(Coding::EucKr)
                .fallback(Coding::Utf16)
                .build()
                .map_err(|error| split(error.to_string()))?,
            SmppDataCoding::Ucs2 | SmppDataCoding::Gsm7WhenAscii => multipart
                .encoder(Coding::Utf16)
                .build()
                .map_err(|error| split(error.to_string()))?,
        };
        Ok(parts)
    }
}

/// A final delivery receipt, success or failure.
fn receipt_requested() -> RegisteredDelivery {
    RegisteredDelivery::new(
        MCDeliveryReceipt::McDeliveryReceiptRequestedWhereFinalDeliveryOutcomeIsSuccessOrFailure,
        SmeOriginatedAcknowledgement::NoReceiptSmeAcknowledgementRequested,
        IntermediateNotification::NoIntermediaryNotificationRequested,
        0,
    )
}

/// What every session of a carrier shares.
struct SessionSettings {
    carrier: CarrierId,
    url: String,
    system_id: String,
    password: String,
    system_type: String,
    enquire_link: Duration,
    response_timeout: Duration,
    jetstream: Context,
    /// The TLS configuration that trusts the carrier's CA (none: the default one),
    /// or why it could not be made (every bind then fails with it).
    tls: Result<Option<rustls::ClientConfig>, String>,
}

/// A TLS client configuration that trusts the certificates in the PEM file `ca_file`.
fn tls_trusting(ca_file: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certificates = rustls_pki_types::CertificateDer::pem_file_iter(ca_file)
        .map_err(|error| format!("ca_file {}: {error}", ca_file.display()))?;
    for certificate in certificates {
        let certificate =
            certificate.map_err(|error| format!("ca_file {}: {error}", ca_file.display()))?;
        roots
            .add(certificate)
            .map_err(|error| format!("ca_file {}: {error}", ca_file.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "ca_file {} holds no certificate",
            ca_file.display()
        ));
    }
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS: {error}"))
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
}

/// Keeps session `index`'s connection bound as `role` until `shutdown`, publishing
/// its client to `bound` (the submitting connection's) while bound.
async fn keep_session(
    session: Arc<SessionSettings>,
    index: usize,
    role: Role,
    bound: Option<watch::Sender<Option<Client>>>,
    shutdown: CancellationToken,
) {
    let carrier = &session.carrier;
    let role_name = role.as_str();
    let mut delay = Duration::from_millis(500);
    let publish = |client: Option<Client>| {
        if let Some(bound) = &bound {
            bound.send_replace(client);
        }
    };
    while !shutdown.is_cancelled() {
        match bind(&session, role).await {
            Ok((client, events)) => {
                tracing::info!(%carrier, session = index, role = role_name, url = %session.url, "SMPP session bound");
                metrics::counter!(crate::metric_names::SMPP_BINDS_TOTAL, "carrier" => carrier.to_string(), "outcome" => "bound").increment(1);
                delay = Duration::from_millis(500);
                publish(Some(client.clone()));
                serve(&session, &client, events, &shutdown).await;
                publish(None);
                if shutdown.is_cancelled() {
                    if let Err(error) = client.unbind().await {
                        tracing::debug!(%carrier, session = index, %error, "unbind was not answered");
                    }
                    let _ = client.close().await;
                    tracing::info!(%carrier, session = index, "SMPP session unbound");
                    return;
                }
                tracing::warn!(%carrier, session = index, "SMPP session lost; binding again");
                let _ = client.close().await;
            }
            Err(reason) => {
                metrics::counter!(crate::metric_names::SMPP_BINDS_TOTAL, "carrier" => carrier.to_string(), "outcome" => "failed").increment(1);
                tracing::warn!(%carrier, session = index, %reason, retry_in = ?delay, "SMPP bind failed");
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(LONGEST_REBIND_DELAY);
    }
}

type Events = std::pin::Pin<Box<dyn futures::Stream<Item = Event> + Send>>;

/// Connects and binds as `role`.
async fn bind(session: &SessionSettings, role: Role) -> Result<(Client, Events), String> {
    let mut builder = ConnectionBuilder::new()
        .enquire_link_interval(session.enquire_link)
        .enquire_link_response_timeout(session.response_timeout)
        .response_timeout(session.response_timeout)
        .disable_interface_version_check();
    if let Some(config) = session.tls.clone()? {
        builder = builder.rustls_config(config);
    }
    let (client, events) = builder
        .connect(session.url.as_str())
        .await
        .map_err(|error| format!("connect: {error}"))?;
    fn octets<const MAX: usize>(value: &str, what: &str) -> Result<COctetString<1, MAX>, String> {
        COctetString::from_str(value).map_err(|error| format!("{what}: {error}"))
    }
    let (system_id, password, system_type) = (
        octets(&session.system_id, "system_id")?,
        octets(&session.password, "password")?,
        octets(&session.system_type, "system_type")?,
    );
    // The three bind PDUs are three types with the same fields.
    macro_rules! request {
        ($kind:ident) => {
            $kind::builder()
                .system_id(system_id)
                .password(password)
                .system_type(system_type)
                .interface_version(InterfaceVersion::Smpp3_4)
                .addr_ton(Ton::Unknown)
                .addr_npi(Npi::Unknown)
                .address_range(COctetString::empty())
                .build()
        };
    }
    let bound = match role {
        Role::Transceiver => client
            .bind_transceiver(request!(BindTransceiver))
            .await
            .map(drop),
        Role::Transmitter => client
            .bind_transmitter(request!(BindTransmitter))
            .await
            .map(drop),
        Role::Receiver => client.bind_receiver(request!(BindReceiver)).await.map(drop),
    };
    if let Err(error) = bound {
        let _ = client.close().await;
        return Err(format!("bind_{}: {error}", role.as_str()));
    }
    Ok((client, Box::pin(events)))
}

/// Answers what the SMSC sends on a bound session until it closes or `shutdown`.
async fn serve(
    session: &SessionSettings,
    client: &Client,
    mut events: Events,
    shutdown: &CancellationToken,
) {
    let carrier = &session.carrier;
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = events.next() => event,
        };
        match event {
            None => return,
            Some(Event::Error(error)) => {
                tracing::warn!(%carrier, %error, "SMPP session error");
            }
            Some(Event::Incoming(command)) => match command.pdu() {
                Some(Pdu::DeliverSm(deliver)) => {
                    let status = take_delivery(session, receipt::read(deliver)).await;
                    let answered = client
                        .status(status)
                        .deliver_sm_resp(command.sequence_number(), DeliverSmResp::default())
                        .await;
                    if let Err(error) = answered {
                        tracing::warn!(%carrier, %error, "answering a deliver_sm failed; the SMSC sends it again");
                    }
                }
                Some(Pdu::Unbind) => {
                    let _ = client.unbind_resp(command.sequence_number()).await;
                    return;
                }
                _ => {}
            },
        }
    }
}

/// Stores a receipt before it is acknowledged; the status to answer the SMSC with.
async fn take_delivery(session: &SessionSettings, delivered: Delivered) -> CommandStatus {
    let carrier = &session.carrier;
    match delivered {
        Delivered::Receipt(receipt) => {
            match crate::receipts::intake::store(&session.jetstream, carrier, vec![receipt]).await {
                Ok(()) => CommandStatus::EsmeRok,
                Err(error) => {
                    tracing::warn!(%carrier, %error, "storing an SMPP receipt failed; asking the SMSC to send it again");
                    CommandStatus::EsmeRxTAppn
                }
            }
        }
        Delivered::Intermediate {
            carrier_reference,
            state,
        } => {
            tracing::debug!(%carrier, %carrier_reference, %state, "intermediate SMPP receipt");
            CommandStatus::EsmeRok
        }
        Delivered::MobileOriginated { from, to, text } => {
            let message = InboundMessage::new(
                carrier.clone(),
                from,
                to,
                &text,
                rns_types::time::now_milliseconds(),
            );
            let stored = Outbound {
                subject: inbound_subject(carrier),
                message_id: message_ids::inbound(
                    carrier,
                    &message.from,
                    &message.to,
                    &message.text,
                ),
                payload: Bytes::from(
                    serde_json::to_vec(&Inbound::MobileOriginated(message))
                        .expect("an inbound message serialises"),
                ),
            };
            match publish_all(&session.jetstream, [stored], 1).await {
                Ok(()) => {
                    metrics::counter!(crate::metric_names::SMPP_MOBILE_ORIGINATED_TOTAL, "carrier" => carrier.to_string())
                        .increment(1);
                    CommandStatus::EsmeRok
                }
                Err(error) => {
                    tracing::warn!(%carrier, %error, "storing a message from a handset failed; asking the SMSC to send it again");
                    CommandStatus::EsmeRxTAppn
                }
            }
        }
        Delivered::Unreadable(text) => {
            tracing::warn!(%carrier, %text, "a receipt without a message id; acknowledged and dropped");
            CommandStatus::EsmeRok
        }
    }
}
