BASE_URL="http://127.0.0.1:5110"
CLIENT_API_KEY="..."
PHONE_ID="phone_main"

curl -sS -X POST "$BASE_URL/api/v1/messages" \
  -H "Authorization: Bearer $CLIENT_API_KEY" \
  -H "Content-Type: application/json" \
  -d "{\"phone_id\":\"$PHONE_ID\",\"channel\":\"sms\",\"to\":\"+15551234567\",\"text\":\"hello\",\"source\":\"curl\",\"idempotency_key\":\"sms-001\"}"
