import java.net.URI;
import java.net.http.*;

public class Send {
  public static void main(String[] args) throws Exception {
    String base = "http://127.0.0.1:5110";
    String apiKey = "...";
    String json = "{\"phone_id\":\"phone_main\",\"channel\":\"sms\",\"to\":\"+15551234567\",\"text\":\"hello\",\"source\":\"java\",\"idempotency_key\":\"sms-001\"}";

    HttpRequest req = HttpRequest.newBuilder()
      .uri(URI.create(base + "/api/v1/messages"))
      .header("Authorization", "Bearer " + apiKey)
      .header("Content-Type", "application/json")
      .POST(HttpRequest.BodyPublishers.ofString(json))
      .build();

    HttpResponse<String> resp = HttpClient.newHttpClient().send(req, HttpResponse.BodyHandlers.ofString());
    System.out.println(resp.statusCode());
    System.out.println(resp.body());
  }
}
