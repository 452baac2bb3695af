// An SMSC for RNS's tests, built on node-smpp's server: the SMPP 3.4 protocol
// handling (PDU codec, sessions, sequence numbers) is the library's, not ours.
//
//   node smsc.js --smpp-port 2775 --control-port 8775 --system-id rns --password secret
//                [--tls-key key.pem --tls-cert cert.pem]   (SMPP over TLS)
//
// It takes bind_transceiver/bind_transmitter/bind_receiver with that system id and
// password, answers enquire_link and unbind, answers submit_sm with a message id and
// later sends a delivery receipt as deliver_sm (esm_class 0x04, the standard
// "id:… stat:…" text and the receipted_message_id / message_state TLVs) on a bound
// session. Concatenated parts (UDH) are recorded with their part and parts, each with
// a receipt of its own when it asks for one.
//
// Control over HTTP on --control-port:
//   PUT  /knobs     {"receipt_delay_milliseconds", "answer_delay_milliseconds",
//                    "undeliverable_rate", "loss_rate", "duplicate_rate", "early_rate",
//                    "throttle_rate", "unanswered_rate", "refuse_binds",
//                    "undeliverable_part", "lost_part", "answer_enquire_links",
//                    "generic_nack_submits" (the next N submits are answered with a
//                    generic_nack, ESME_RSYSERR)}
//                    (merged into the current ones;
//                    the last two name the part, from 1, of every message whose
//                    receipt says UNDELIV or is never sent; a message in one part is
//                    part 1; 0: none)
//   POST /drop      closes every session at once (a dropped bind)
//   POST /mobile-originated {"from", "to", "text"}
//                   a handset's message: deliver_sm (esm_class 0, UCS-2) on a bound
//                   session that can receive; answers with the deliver_sm_resp status
//   GET  /counts    its counters
//   GET  /messages  every submitted part: message id, source, destination, text,
//                   data coding, part and parts, state, and receipt_lost when its
//                   receipt was never to be sent
'use strict';

const http = require('http');
const smpp = require('smpp');

function argument(name, fallback) {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1] : fallback;
}

const smppPort = Number(argument('smpp-port', 2775));
const controlPort = Number(argument('control-port', 8775));
const systemId = argument('system-id', 'rns');
const password = argument('password', 'secret');

const knobs = {
  receipt_delay_milliseconds: 100,
  answer_delay_milliseconds: 0,
  undeliverable_rate: 0,
  loss_rate: 0,
  duplicate_rate: 0,
  early_rate: 0,
  throttle_rate: 0,
  unanswered_rate: 0,
  refuse_binds: false,
  undeliverable_part: 0,
  lost_part: 0,
  answer_enquire_links: true,
  generic_nack_submits: 0,
};
const counts = {
  binds: 0,
  refused_binds: 0,
  enquire_links: 0,
  unbinds: 0,
  submits: 0,
  throttled: 0,
  unanswered: 0,
  accepted: 0,
  receipts_sent: 0,
  receipts_acknowledged: 0,
  receipts_lost: 0,
  dropped_sessions: 0,
  // The most submits one session had awaiting their answer at once.
  max_outstanding: 0,
};
const messages = [];
const bound = new Set();
let nextId = 1;

// The text of a part: node-smpp decodes GSM, Latin-1 and UCS-2 itself and leaves
// other codings as bytes; KS C 5601 (0x0E) is EUC-KR.
function textOf(message, dataCoding) {
  if (typeof message === 'string') {
    return message;
  }
  if (!Buffer.isBuffer(message)) {
    return '';
  }
  return dataCoding === 0x0e ? new TextDecoder('euc-kr').decode(message) : message.toString('latin1');
}

function chance(rate) {
  return Math.random() < rate;
}

function smppTime(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${pad(date.getUTCFullYear() % 100)}${pad(date.getUTCMonth() + 1)}${pad(date.getUTCDate())}` +
    `${pad(date.getUTCHours())}${pad(date.getUTCMinutes())}`;
}

// Sends a receipt on a bound session that can receive, now or as soon as one is.
function sendReceipt(message, attemptsLeft) {
  const sessions = [...bound].filter((session) => session.canReceive);
  if (sessions.length === 0) {
    if (attemptsLeft > 0) {
      setTimeout(() => sendReceipt(message, attemptsLeft - 1), 200);
    }
    return;
  }
  const session = sessions[Math.floor(Math.random() * sessions.length)];
  const delivered = message.state === 'DELIVRD';
  const now = smppTime(new Date());
  counts.receipts_sent += 1;
  session.deliver_sm({
    source_addr: message.destination,
    destination_addr: message.source,
    esm_class: 0x04,
    short_message: `id:${message.id} sub:001 dlvrd:${delivered ? '001' : '000'} ` +
      `submit date:${message.submitted} done date:${now} stat:${message.state} err:${delivered ? '000' : '001'} text:`,
    receipted_message_id: message.id,
    message_state: delivered ? 2 : 5,
  }, (pdu) => {
    if (pdu.command_status === 0) {
      counts.receipts_acknowledged += 1;
    }
  });
}

function bindHandler(session, canSubmit, canReceive) {
  return (pdu) => {
    if (knobs.refuse_binds || pdu.system_id !== systemId || pdu.password !== password) {
      counts.refused_binds += 1;
      session.send(pdu.response({ command_status: smpp.ESME_RBINDFAIL }));
      session.close();
      return;
    }
    counts.binds += 1;
    session.canSubmit = canSubmit;
    session.canReceive = canReceive;
    bound.add(session);
    session.send(pdu.response({ system_id: 'rns-test-smsc' }));
  };
}

const tlsKey = argument('tls-key', null);
const tlsCert = argument('tls-cert', null);
const serverOptions = tlsKey && tlsCert
  ? { debug: false, key: require('fs').readFileSync(tlsKey), cert: require('fs').readFileSync(tlsCert) }
  : { debug: false };
const server = smpp.createServer(serverOptions, (session) => {
  session.on('error', () => {});
  session.on('close', () => bound.delete(session));
  session.on('bind_transceiver', bindHandler(session, true, true));
  session.on('bind_transmitter', bindHandler(session, true, false));
  session.on('bind_receiver', bindHandler(session, false, true));
  session.on('enquire_link', (pdu) => {
    counts.enquire_links += 1;
    if (!knobs.answer_enquire_links) {
      counts.unanswered_enquire_links = (counts.unanswered_enquire_links || 0) + 1;
      return;
    }
    session.send(pdu.response());
  });
  session.on('unbind', (pdu) => {
    counts.unbinds += 1;
    bound.delete(session);
    session.send(pdu.response());
    session.close();
  });
  session.outstanding = 0;
  // Answers a submit after the answer delay, counting what waits.
  const answer = (response) => {
    session.outstanding += 1;
    counts.max_outstanding = Math.max(counts.max_outstanding, session.outstanding);
    setTimeout(() => {
      session.outstanding -= 1;
      session.send(response);
    }, knobs.answer_delay_milliseconds);
  };
  session.on('submit_sm', (pdu) => {
    counts.submits += 1;
    if (!bound.has(session) || !session.canSubmit) {
      session.send(pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
      return;
    }
    if (knobs.generic_nack_submits > 0) {
      knobs.generic_nack_submits -= 1;
      counts.generic_nacks = (counts.generic_nacks || 0) + 1;
      session.send(new smpp.PDU('generic_nack', {
        sequence_number: pdu.sequence_number,
        command_status: smpp.ESME_RSYSERR,
      }));
      return;
    }
    if (chance(knobs.unanswered_rate)) {
      counts.unanswered += 1;
      return;
    }
    if (chance(knobs.throttle_rate)) {
      counts.throttled += 1;
      answer(pdu.response({ command_status: smpp.ESME_RTHROTTLED }));
      return;
    }
    counts.accepted += 1;
    const id = (nextId++).toString(16).padStart(10, '0');
    // The text is in short_message, or whole in the message_payload TLV.
    const payload = pdu.message_payload && pdu.message_payload.message ? pdu.message_payload : null;
    const body = payload || pdu.short_message || {};
    let part = 1;
    let parts = 1;
    for (const header of body.udh || []) {
      // 8-bit (0x00) or 16-bit (0x08) concatenation reference.
      if (header[0] === 0x00) {
        parts = header[3];
        part = header[4];
      } else if (header[0] === 0x08) {
        parts = header[4];
        part = header[5];
      }
    }
    const message = {
      id,
      source: pdu.source_addr,
      destination: pdu.destination_addr,
      text: textOf(body.message, pdu.data_coding),
      data_coding: pdu.data_coding,
      part,
      parts,
      registered_delivery: pdu.registered_delivery,
      message_payload: payload !== null,
      submitted: smppTime(new Date()),
      state: part === knobs.undeliverable_part || chance(knobs.undeliverable_rate) ? 'UNDELIV' : 'DELIVRD',
    };
    messages.push(message);
    const wantsReceipt = (pdu.registered_delivery & 0x03) !== 0;
    const lost = wantsReceipt && (part === knobs.lost_part || chance(knobs.loss_rate));
    if (lost) {
      counts.receipts_lost += 1;
      message.receipt_lost = true;
    }
    const receipts = !wantsReceipt || lost ? 0 : chance(knobs.duplicate_rate) ? 2 : 1;
    if (receipts > 0 && chance(knobs.early_rate)) {
      sendReceipt(message, 50);
      answer(pdu.response({ message_id: id }));
      for (let copy = 1; copy < receipts; copy += 1) {
        setTimeout(() => sendReceipt(message, 50), knobs.receipt_delay_milliseconds);
      }
      return;
    }
    answer(pdu.response({ message_id: id }));
    for (let copy = 0; copy < receipts; copy += 1) {
      setTimeout(() => sendReceipt(message, 50), knobs.receipt_delay_milliseconds);
    }
  });
});

server.listen(smppPort, '127.0.0.1');

function reply(response, status, body) {
  response.writeHead(status, { 'Content-Type': 'application/json' });
  response.end(JSON.stringify(body));
}

http.createServer((request, response) => {
  let body = '';
  request.on('data', (chunk) => { body += chunk; });
  request.on('end', () => {
    if (request.method === 'GET' && request.url === '/counts') {
      return reply(response, 200, counts);
    }
    if (request.method === 'GET' && request.url === '/messages') {
      return reply(response, 200, messages);
    }
    if (request.method === 'PUT' && request.url === '/knobs') {
      try {
        const changes = JSON.parse(body || '{}');
        for (const key of Object.keys(changes)) {
          if (!(key in knobs)) {
            return reply(response, 422, { error: { code: 'unknown_knob', message: key } });
          }
        }
        Object.assign(knobs, changes);
        return reply(response, 200, knobs);
      } catch (error) {
        return reply(response, 400, { error: { code: 'invalid_json', message: String(error) } });
      }
    }
    if (request.method === 'POST' && request.url === '/mobile-originated') {
      let message;
      try {
        message = JSON.parse(body || '{}');
      } catch (error) {
        return reply(response, 400, { error: { code: 'invalid_json', message: String(error) } });
      }
      const sessions = [...bound].filter((session) => session.canReceive);
      if (sessions.length === 0) {
        return reply(response, 409, { error: { code: 'not_bound', message: 'no session can receive' } });
      }
      counts.mobile_originated = (counts.mobile_originated || 0) + 1;
      return sessions[0].deliver_sm({
        source_addr: message.from,
        destination_addr: message.to,
        esm_class: 0,
        data_coding: 0x08,
        short_message: Buffer.from(
          Buffer.from(message.text, 'utf16le').swap16(),
        ),
      }, (pdu) => reply(response, 200, { command_status: pdu.command_status }));
    }
    if (request.method === 'POST' && request.url === '/drop') {
      counts.dropped_sessions += server.sessions.length;
      for (const session of [...server.sessions]) {
        bound.delete(session);
        session.destroy();
      }
      return reply(response, 200, { dropped: counts.dropped_sessions });
    }
    return reply(response, 404, { error: { code: 'not_found', message: request.url } });
  });
}).listen(controlPort, '127.0.0.1');

process.on('SIGTERM', () => process.exit(0));
