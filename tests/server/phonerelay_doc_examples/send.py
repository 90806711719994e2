import requests

BASE_URL = "http://127.0.0.1:5110"
CLIENT_API_KEY = "..."

payload = {
  "phone_id": "phone_main",
  "channel": "sms",
  "to": "+15551234567",
  "text": "hello",
  "source": "python",
  "idempotency_key": "sms-001",
}

r = requests.post(
  f"{BASE_URL}/api/v1/messages",
  headers={"Authorization": f"Bearer {CLIENT_API_KEY}", "Content-Type": "application/json"},
  json=payload,
  timeout=10,
)
print(r.status_code, r.json())
