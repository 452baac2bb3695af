// Korean by default, English on request; the choice is kept in the browser.
import { signal } from "@preact/signals";

export type Language = "ko" | "en";

const words = {
  ko: {
    title: "RNS 콘솔",
    language: "English",
    signIn: "로그인",
    signUp: "회원가입",
    signOut: "로그아웃",
    email: "이메일",
    password: "비밀번호",
    passwordHint: "10자 이상",
    name: "이름",
    phone: "휴대폰 번호",
    company: "회사 이름",
    haveAccount: "이미 계정이 있으신가요?",
    noAccount: "계정이 없으신가요?",
    verifyTitle: "휴대폰 인증",
    verifyHelp: "{phone}(으)로 보낸 6자리 인증번호를 입력하세요.",
    code: "인증번호",
    verify: "인증하기",
    resend: "인증번호 다시 받기",
    resent: "새 인증번호를 보냈습니다.",
    home: "홈",
    todaySends: "오늘 보낸 메시지",
    successRate: "성공률",
    points: "포인트",
    carriers: "통신사 상태",
    recentRequests: "최근 요청",
    acceptedAt: "접수 시각",
    total: "건수",
    delivered: "성공",
    failed: "실패",
    none: "아직 없습니다.",
    circuit_closed: "정상",
    circuit_open: "차단",
    circuit_half_open: "확인 중",
    loading: "불러오는 중…",
    skip: "본문으로 건너뛰기",
    senderNumbers: "발신번호",
    registerNumber: "발신번호 등록",
    registeredNumbers: "등록된 발신번호",
    registerHelp: "휴대폰 번호는 문자로 받은 인증번호로, 유선·대표번호는 운영자가 서류를 확인한 뒤 인증됩니다.",
    senderNumber: "발신번호",
    register: "등록",
    status: "상태",
    optOutNumber: "수신거부 번호",
    nextStep: "다음 단계",
    status_pending: "인증 대기",
    status_verified: "인증됨",
    status_suspended: "정지됨",
    status_rejected: "거절됨",
    codeSentTo: "{phone}(으)로 인증번호를 보냈습니다.",
    awaitsOperator: "운영자 승인을 기다립니다.",
    verifiedNumber: "{phone} 발신번호가 인증되었습니다.",
    apiKeys: "API 키",
    issueKey: "키 발급",
    issuedKeys: "발급된 키",
    keyName: "키 이름",
    scopes: "권한",
    keyShownOnce: "새 키 — 지금 한 번만 보입니다",
    lastUsed: "마지막 사용",
    actions: "작업",
    rotate: "교체",
    revoke: "폐기",
  },
  en: {
    title: "RNS console",
    language: "한국어",
    signIn: "Sign in",
    signUp: "Sign up",
    signOut: "Sign out",
    email: "Email",
    password: "Password",
    passwordHint: "10 characters or more",
    name: "Name",
    phone: "Mobile number",
    company: "Company name",
    haveAccount: "Have an account?",
    noAccount: "No account yet?",
    verifyTitle: "Verify your phone",
    verifyHelp: "Enter the six-digit code sent to {phone}.",
    code: "Code",
    verify: "Verify",
    resend: "Send another code",
    resent: "A new code is on its way.",
    home: "Home",
    todaySends: "Messages today",
    successRate: "Success rate",
    points: "Points",
    carriers: "Carriers",
    recentRequests: "Recent requests",
    acceptedAt: "Accepted",
    total: "Messages",
    delivered: "Delivered",
    failed: "Failed",
    none: "None yet.",
    circuit_closed: "Healthy",
    circuit_open: "Open",
    circuit_half_open: "Probing",
    loading: "Loading…",
    skip: "Skip to content",
    senderNumbers: "Sender numbers",
    registerNumber: "Register a sender number",
    registeredNumbers: "Registered numbers",
    registerHelp: "A mobile number is verified by a texted code; a landline or representative number by the operator, after checking its papers.",
    senderNumber: "Sender number",
    register: "Register",
    status: "Status",
    optOutNumber: "Opt-out number",
    nextStep: "Next step",
    status_pending: "Pending",
    status_verified: "Verified",
    status_suspended: "Suspended",
    status_rejected: "Rejected",
    codeSentTo: "A code was sent to {phone}.",
    awaitsOperator: "It waits for the operator's approval.",
    verifiedNumber: "{phone} is verified.",
    apiKeys: "API keys",
    issueKey: "Issue a key",
    issuedKeys: "Issued keys",
    keyName: "Key name",
    scopes: "Scopes",
    keyShownOnce: "Your new key — shown this once",
    lastUsed: "Last used",
    actions: "Actions",
    rotate: "Rotate",
    revoke: "Revoke",
  },
} as const;

export type Word = keyof (typeof words)["ko"];

function initial(): Language {
  return localStorage.getItem("rns.language") === "en" ? "en" : "ko";
}

export const language = signal<Language>(initial());

export function setLanguage(next: Language) {
  language.value = next;
  localStorage.setItem("rns.language", next);
  document.documentElement.lang = next;
}

/** The word `key` in the chosen language, with `{name}` parts filled. */
export function t(key: Word, fill: Record<string, string> = {}): string {
  let text: string = words[language.value][key];
  for (const [name, value] of Object.entries(fill)) text = text.replace(`{${name}}`, value);
  return text;
}
