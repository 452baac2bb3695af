// The console in a real browser (Debian's Chromium, driven by playwright-core), as
// a new person uses it: sign up, prove the phone with the code RNS texted (read on
// the handset: from the carrier simulators, since RNS records such texts withheld),
// see the home page, switch to English, sign
// out, and sign in again with the keyboard alone. Every page gets a screenshot and
// an axe-core check that finds no serious or critical violation.
//
// Run by the end-to-end test `e2e/tests/console.rs`, which starts RNS and passes:
//   RNS_URL         the gateway, e.g. http://127.0.0.1:8080
//   SIMULATOR_URLS  the carrier simulators, comma-separated
//   SCREENSHOTS     the directory for the screenshots
// Exits 0 when every step passed; else prints the failure and exits 1.
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
const RNS = process.env.RNS_URL;
const SIMULATORS = (process.env.SIMULATOR_URLS ?? "").split(",").filter(Boolean);
const ADMIN_KEY = process.env.ADMIN_KEY;
const SCREENSHOTS = process.env.SCREENSHOTS ?? "test-results";
const PHONE = "01055550101";
const EMAIL = "minsu@example.com";
const PASSWORD = "correct horse battery";

if (!RNS || SIMULATORS.length === 0 || !ADMIN_KEY) {
  console.error("RNS_URL, SIMULATOR_URLS and ADMIN_KEY must be set");
  process.exit(2);
}
mkdirSync(SCREENSHOTS, { recursive: true });

function check(condition, what) {
  if (!condition) throw new Error(what);
}

/** The code in the latest text that reached `phone`, waiting for it. */
async function textedCode(phone) {
  for (let attempt = 0; attempt < 150; attempt++) {
    const texts = [];
    for (const simulator of SIMULATORS) {
      const answer = await fetch(`${simulator}/v1/texts?to=${phone}`);
      if (answer.ok) texts.push(...(await answer.json()));
    }
    const code = texts.length > 0 ? texts[texts.length - 1].match(/\b(\d{6})\b/) : null;
    if (code) return code[1];
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`no code reached ${phone}`);
}

/** Screenshot and accessibility check of the page as it is. */
async function examine(page, name) {
  await page.screenshot({ path: `${SCREENSHOTS}/${name}.png`, fullPage: true });
  await page.addScriptTag({ content: AXE });
  const results = await page.evaluate(async () => await window.axe.run(document));
  const serious = results.violations.filter((violation) =>
    ["serious", "critical"].includes(violation.impact),
  );
  check(
    serious.length === 0,
    `${name}: accessibility violations: ` +
      serious.map((violation) => `${violation.id} (${violation.nodes.length}): ${violation.help}`).join("; "),
  );
  console.log(`ok: ${name} (screenshot, axe: ${results.violations.length} minor)`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let failed = false;
try {
  // bypassCSP: the console forbids inline scripts, and axe-core is injected as one.
  const context = await browser.newContext({
    locale: "ko-KR",
    viewport: { width: 1200, height: 800 },
    bypassCSP: true,
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  // What the page itself reports, for a failure's diagnosis.
  page.on("console", (message) => console.error(`page console ${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => console.error(`page error: ${error}`));
  page.on("response", (response) => {
    if (response.status() >= 400) console.error(`page request ${response.status()}: ${response.url()}`);
  });
  globalThis.lastPage = page;

  // A newcomer opens RNS and lands on the console's sign-in page, in Korean.
  await page.goto(RNS);
  check(new URL(page.url()).pathname === "/console/", `landed on ${page.url()}`);
  await page.getByRole("heading", { name: "로그인" }).waitFor();
  await examine(page, "01-sign-in");

  await page.getByRole("link", { name: "회원가입" }).click();
  await page.getByRole("heading", { name: "회원가입" }).waitFor();
  await page.getByLabel("이메일").fill(EMAIL);
  await page.getByLabel("비밀번호").fill(PASSWORD);
  await page.getByLabel("이름", { exact: true }).fill("김민수");
  await page.getByLabel("휴대폰 번호").fill("010-5555-0101");
  await page.getByLabel("회사 이름").fill("민수 마트");
  await examine(page, "02-sign-up");
  await page.getByRole("button", { name: "회원가입" }).click();

  await page.getByRole("heading", { name: "휴대폰 인증" }).waitFor();
  await examine(page, "03-verify-phone");
  await page.getByLabel("인증번호").fill("000000" === (await textedCode(PHONE)) ? "111111" : "000000");
  await page.getByRole("button", { name: "인증하기" }).click();
  await page.getByRole("alert").waitFor();
  check((await page.getByRole("alert").textContent()).includes("wrong"), "a wrong code is refused");
  await page.getByLabel("인증번호").fill(await textedCode(PHONE));
  await page.getByRole("button", { name: "인증하기" }).click();

  await page.getByRole("heading", { name: "민수 마트" }).waitFor();
  await page.getByText("통신사 상태").waitFor();
  await examine(page, "04-home");
  check((await page.getByText("KT", { exact: true }).count()) >= 1, "the carriers are listed");

  // A mobile sender number, verified with the code texted to it.
  await page.getByRole("link", { name: "발신번호" }).click();
  await page.getByRole("heading", { name: "발신번호 등록" }).waitFor();
  await page.getByLabel("발신번호", { exact: true }).fill("010-5555-0202");
  await page.getByRole("button", { name: "등록" }).click();
  await page.getByRole("status").waitFor();
  await page.getByRole("cell", { name: "인증 대기" }).waitFor();
  await page.getByLabel("인증번호").fill(await textedCode("01055550202"));
  await page.getByRole("button", { name: "인증하기" }).click();
  await page.getByRole("cell", { name: "인증됨" }).waitFor();
  await examine(page, "06-sender-numbers");

  // An API key, shown once.
  await page.getByRole("link", { name: "API 키" }).click();
  await page.getByLabel("키 이름").fill("shop server");
  await page.getByRole("button", { name: "키 발급" }).click();
  const key = await page.getByTestId("new-key").textContent();
  check(/^rns_[0-9a-f]{8}_[0-9a-f]{48}$/.test(key), `a key is shown once: ${key}`);
  await page.getByRole("cell", { name: /shop server/ }).waitFor();
  await examine(page, "07-api-keys");

  // Someone new is invited: the link is shown once.
  await page.getByRole("link", { name: "구성원" }).click();
  await page.getByLabel("이메일").fill("lee@example.com");
  await page.getByRole("button", { name: "초대하기" }).click();
  const invitationLink = await page.getByTestId("invitation-link").textContent();
  check(invitationLink.includes("#/signup?invitation="), `an invitation link: ${invitationLink}`);
  await examine(page, "08-members");

  // The operator tops the company up; its points page shows the balance and the entry.
  const customer = await page.evaluate(async () => (await (await fetch("/v1/auth/session")).json()).customer.id);
  const topUp = await fetch(`${RNS}/v1/admin/customers/${customer}/points`, {
    method: "POST",
    headers: { authorization: `Bearer ${ADMIN_KEY}`, "content-type": "application/json" },
    body: JSON.stringify({ amount: 1500, reason: "first top-up" }),
  });
  check(topUp.ok, `the operator's top-up: ${topUp.status}`);
  await page.getByRole("link", { name: "포인트" }).click();
  await page.getByRole("heading", { name: "포인트 내역" }).waitFor();
  await page.getByRole("cell", { name: "충전" }).waitFor();
  // The balance and the ledger's entry are read apart: both say 1,500.
  await page.getByText("1,500").nth(1).waitFor();
  await examine(page, "09-points");

  // Contacts from a CSV file into a new group: the progress bar fills, and the row
  // that is no phone number is reported by its row in the file.
  await page.getByRole("link", { name: "주소록" }).click();
  await page.getByLabel("새 그룹 이름").fill("VIP 고객");
  await page.getByRole("button", { name: "그룹 만들기" }).click();
  await page.getByRole("status").filter({ hasText: "VIP 고객" }).waitFor();
  const csv = "number,name,memo\n010-5555-1001,김하나,\n010-5555-1002,이두리,단골\nnot-a-number,박오류,\n";
  await page.getByLabel("CSV 파일").setInputFiles({ name: "contacts.csv", mimeType: "text/csv", buffer: Buffer.from(csv) });
  await page.getByRole("button", { name: "가져오기", exact: true }).click();
  await page.getByRole("status").filter({ hasText: "가져오기 완료" }).waitFor();
  const bar = page.getByLabel("가져오는 중");
  check((await bar.getAttribute("value")) === "3" && (await bar.getAttribute("max")) === "3", "the progress bar is full");
  const rowError = page.getByRole("table", { name: "가져오지 못한 행" }).getByRole("row").nth(1);
  check((await rowError.getByRole("cell").first().textContent()) === "4", "the bad row is row 4 of the file");
  await page.getByRole("cell", { name: "이두리" }).waitFor();
  check((await page.getByRole("cell", { name: "01055551001", exact: true }).count()) === 1, "the imported contacts are listed");
  await examine(page, "10-contacts");

  // A first message to the group, each name filled in: the preview shows the count,
  // the bytes and the first recipients' texts before anything is sent.
  await page.getByRole("link", { name: "메시지 보내기" }).click();
  await page.getByRole("heading", { name: "메시지 보내기" }).waitFor();
  await page.getByLabel("VIP 고객 (2)").check();
  await page.getByLabel("내용", { exact: true }).fill("#{name}님, 주문하신 상품이 발송되었습니다.");
  await page.getByTestId("preview-summary").filter({ hasText: "수신자 2명" }).waitFor();
  await page.getByRole("cell", { name: "김하나님, 주문하신 상품이 발송되었습니다." }).waitFor();
  check(/^\d+ \/ 90 바이트 · SMS$/.test(await page.getByTestId("bytes").textContent()), "the bytes are counted");
  await examine(page, "11-send");
  await page.getByRole("button", { name: "보내기", exact: true }).click();
  await page.getByTestId("sent").waitFor();
  await page.getByRole("link", { name: "결과 보기" }).click();

  // The results arrive by themselves: both delivered, the request's summary charted,
  // a message's timeline.
  await page.getByRole("cell", { name: "성공", exact: true }).nth(1).waitFor({ timeout: 60_000 });
  await page.getByTestId("request-summary").waitFor();
  await page.getByRole("button", { name: "01055551002" }).click();
  await page.getByTestId("timeline").getByText("이두리님").waitFor();
  await examine(page, "12-results");

  // The points moved: two SMS spent.
  await page.getByRole("link", { name: "포인트" }).click();
  await page.getByRole("heading", { name: "포인트 내역" }).waitFor();
  await page.getByText("1,498").first().waitFor();
  console.log("ok: the points moved by the send");

  // A new ratio, previewed before it is saved.
  await page.getByRole("link", { name: "통신사 비율" }).click();
  const sms = page.getByRole("region", { name: "문자 (SMS/LMS/MMS)" });
  await sms.getByLabel("KT", { exact: true }).fill("50");
  await sms.getByLabel("SKT", { exact: true }).fill("30");
  await sms.getByLabel("LGU", { exact: true }).fill("20");
  await page.getByTestId("preview-counts-sms").filter({ hasText: "KT 10 · " }).waitFor();
  const counts = await page.getByTestId("preview-counts-sms").textContent();
  check(counts.includes("SKT 6") && counts.includes("LGU 4"), `the next 20 split 10/6/4: ${counts}`);
  await sms.getByRole("button", { name: /저장/ }).click();
  await page.getByRole("status").filter({ hasText: "비율을 저장했습니다" }).waitFor();
  await examine(page, "13-routing");

  // A recurring send, scheduled and cancelled.
  await page.getByRole("link", { name: "메시지 보내기" }).click();
  await page.getByLabel("수신번호 (줄마다 또는 쉼표로 구분)").fill("010-5555-1001");
  await page.getByLabel("내용", { exact: true }).fill("매일 아침 알림");
  await page.getByLabel("반복", { exact: true }).check();
  await page.getByLabel("시각", { exact: true }).fill("09:30");
  await page.getByTestId("next-firings").getByRole("listitem").nth(4).waitFor();
  await page.getByRole("button", { name: "예약하기" }).click();
  await page.getByTestId("sent").filter({ hasText: "반복 발송을 예약했습니다" }).waitFor();
  await page.getByRole("link", { name: "예약 발송" }).first().click();
  await page.getByRole("cell", { name: "0 30 9 * * *" }).waitFor();
  await examine(page, "14-schedules");
  await page.getByRole("button", { name: /예약 취소/ }).click();
  await page.getByRole("status").filter({ hasText: "예약을 취소했습니다" }).waitFor();
  // The list is read again after the notice: the cancelled schedule leaves the waiting ones.
  await page.getByRole("cell", { name: "0 30 9 * * *" }).waitFor({ state: "detached" });
  console.log("ok: a recurring send was scheduled and cancelled");

  // A confidential send: the handset gets the code, the results show it withheld.
  await page.getByRole("link", { name: "메시지 보내기" }).click();
  await page.getByLabel("수신번호 (줄마다 또는 쉼표로 구분)").fill("010-5555-1001");
  await page.getByLabel("내용", { exact: true }).fill("인증번호 [482913]를 입력하세요.");
  await page.getByLabel("기밀 메시지 (내용을 기록하지 않음)").check();
  await page.getByTestId("preview-summary").filter({ hasText: "수신자 1명" }).waitFor();
  await page.getByRole("button", { name: "보내기", exact: true }).click();
  await page.getByTestId("sent").waitFor();
  check((await textedCode("01055551001")) === "482913", "the handset got the confidential code");
  await page.getByRole("link", { name: "결과 보기" }).click();
  await page.getByRole("cell", { name: "성공", exact: true }).waitFor({ timeout: 60_000 });
  check((await page.getByRole("cell", { name: "[withheld]", exact: true }).count()) === 1, "the result shows the text withheld");
  check((await page.getByText("482913").count()) === 0, "the code is nowhere on the results page");
  console.log("ok: a confidential send was delivered and recorded withheld");

  // A template, kept for the send page's picker.
  await page.getByRole("link", { name: "템플릿" }).click();
  await page.getByLabel("템플릿 이름").fill("배송 안내");
  await page.getByLabel("내용", { exact: true }).fill("#{name}님, 배송이 시작되었습니다.");
  await page.getByRole("button", { name: "저장", exact: true }).click();
  await page.getByRole("cell", { name: "배송 안내", exact: true }).waitFor();
  check((await page.getByRole("cell", { name: "name", exact: true }).count()) === 1, "the template's variable is named");
  await examine(page, "15-templates");

  // A number on the blocklist, and the opt-outs of the sender number.
  await page.getByRole("link", { name: "수신거부" }).click();
  await page.getByLabel("수신번호").first().fill("010-5555-1009");
  await page.getByRole("button", { name: "수신거부 추가" }).click();
  await page.getByRole("cell", { name: "01055551009", exact: true }).waitFor();
  await examine(page, "16-blocklist");

  // The webhook: its signing secret is made in the browser and shown once.
  await page.getByRole("link", { name: "웹훅" }).click();
  await page.getByLabel("받을 주소 (URL)").fill("https://hooks.example.com/rns");
  await page.getByRole("button", { name: "저장", exact: true }).click();
  const secret = await page.getByTestId("webhook-secret").textContent();
  check(/^[0-9a-f]{64}$/.test(secret), `a secret is shown once: ${secret}`);
  await examine(page, "17-webhook");

  // The operator, with the operator key, finds the company, tops it up and sees the
  // queues and carriers.
  await page.getByRole("link", { name: "운영자" }).click();
  await page.getByLabel("운영자 키").fill(ADMIN_KEY);
  await page.getByRole("button", { name: "들어가기" }).click();
  await page.getByRole("cell", { name: "민수 마트", exact: true }).waitFor();
  await page.getByLabel(`충전 ${customer}`).fill("100");
  await page.getByRole("button", { name: `충전 ${customer}` }).click();
  await page.getByRole("status").filter({ hasText: "100포인트를 충전했습니다" }).waitFor();
  await examine(page, "18-operator-customers");
  await page.getByRole("link", { name: "대기열" }).click();
  await page.getByRole("cell", { name: "SEND", exact: true }).waitFor();
  await examine(page, "19-operator-queues");
  await page.getByRole("link", { name: "통신사", exact: true }).click();
  await page.getByRole("cell", { name: "KT", exact: true }).waitFor();
  await examine(page, "20-operator-carriers");
  await page.getByRole("button", { name: "운영자 나가기" }).click();
  console.log("ok: the operator topped the company up and saw the queues");

  await page.getByRole("link", { name: "홈" }).click();

  await page.getByRole("button", { name: "English" }).click();
  await page.getByRole("heading", { name: "Carriers" }).waitFor();
  check((await page.evaluate(() => document.documentElement.lang)) === "en", "the page says it is English");
  await examine(page, "05-home-english");
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("heading", { name: "Sign in" }).waitFor();

  // Signing in again with the keyboard alone: Tab to the email field, type, Tab to
  // the password, type, Enter.
  const focused = () => page.evaluate(() => document.activeElement?.id ?? "");
  for (let tabs = 0; (await focused()) !== "field-email"; tabs++) {
    check(tabs < 10, "the email field is reachable by Tab");
    await page.keyboard.press("Tab");
  }
  await page.keyboard.type(EMAIL);
  await page.keyboard.press("Tab");
  check((await focused()) === "field-password", "Tab leads from the email to the password");
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "민수 마트" }).waitFor();
  console.log("ok: signed in again with the keyboard alone");

  // The invited person, in a browser of their own, joins the company as a member.
  const other = await browser.newContext({ locale: "ko-KR", bypassCSP: true });
  const invitee = await other.newPage();
  invitee.setDefaultTimeout(15_000);
  await invitee.goto(invitationLink);
  await invitee.getByRole("heading", { name: "회원가입" }).waitFor();
  check((await invitee.getByLabel("회사 이름").count()) === 0, "an invitee names no company");
  await invitee.getByLabel("이메일").fill("lee@example.com");
  await invitee.getByLabel("비밀번호").fill(PASSWORD);
  await invitee.getByLabel("이름", { exact: true }).fill("이서연");
  await invitee.getByLabel("휴대폰 번호").fill("010-5555-0303");
  await invitee.getByRole("button", { name: "회원가입" }).click();
  await invitee.getByRole("heading", { name: "휴대폰 인증" }).waitFor();
  await invitee.getByLabel("인증번호").fill(await textedCode("01055550303"));
  await invitee.getByRole("button", { name: "인증하기" }).click();
  await invitee.getByRole("heading", { name: "민수 마트" }).waitFor();
  check((await invitee.getByRole("link", { name: "API 키" }).count()) === 0, "a member has no API keys page");
  console.log("ok: an invited member joined the company");
  await other.close();
} catch (error) {
  failed = true;
  console.error(`FAILED: ${error.stack ?? error}`);
  await globalThis.lastPage?.screenshot({ path: `${SCREENSHOTS}/failure.png`, fullPage: true }).catch(() => {});
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
