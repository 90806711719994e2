const BASE_URL = "http://127.0.0.1:5110";
const CLIENT_API_KEY = "...";

const payload = {
  phone_id: "phone_main",
  channel: "sms",
  to: "+15551234567",
  text: "hello",
  source: "node",
  idempotency_key: "sms-001",
};

const r = await fetch(`${BASE_URL}/api/v1/messages`, {
  method: "POST",
  headers: {
    "Authorization": `Bearer ${CLIENT_API_KEY}`,
    "Content-Type": "application/json",
  },
  body: JSON.stringify(payload),
});

console.log(r.status, await r.json());
