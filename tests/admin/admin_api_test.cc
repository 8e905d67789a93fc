// The admin API's decisions (admin_api.h): routing, authentication, separation of the admin and
// auditor roles, bad input, and changes made through the audited key lifecycle (fail-closed).
// Driven through AdminApi::Handle() with a real keystore and audit log in a temporary directory;
// the last tests go through the HTTP listener for what only the handler decides (body limits,
// headers).

#include "coffre/admin/admin_api.h"

#include <gtest/gtest.h>

#include <boost/asio/thread_pool.hpp>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "coffre/admin/admin_handler.h"
#include "coffre/audit/bundle.h"
#include "http/raw_client.h"
#include "support/fake_recorder.h"
#include "support/loopback_server.h"
#include "support/status_matchers.h"
#include "support/temp_dir.h"

namespace coffre::admin {
namespace {

using test_support::StatusIs;

namespace fs = std::filesystem;
using nlohmann::json;

using test_support::FakeRecorder;

class AdminApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SecretBytes root = SecretBytes::Random(32);
    auto keys = keystore::Keystore::Open(dir_.str() + "/keystore.db", SecretBytes::Random(32));
    ASSERT_OK(keys);
    keys_ = std::move(keys).value();
    auto log = audit::AuditLog::Open(dir_.str() + "/audit.db", root);
    ASSERT_OK(log);
    log_ = std::move(log).value();
    lifecycle_ = std::make_unique<service::KeyLifecycle>(*keys_, &recorder_);
    api_ = std::make_unique<AdminApi>(*keys_, *lifecycle_, log_.get());
    auto admin = keys_->CreateAdminCredential("alice", keystore::AdminRole::kAdmin);
    ASSERT_OK(admin);
    admin_token_ = admin->token;
    auto auditor = keys_->CreateAdminCredential("audrey", keystore::AdminRole::kAuditor);
    ASSERT_OK(auditor);
    auditor_token_ = auditor->token;
  }

  void TearDown() override {
    api_.reset();
    lifecycle_.reset();
    log_.reset();
    keys_.reset();
  }

  ApiResponse Call(const std::string& method, const std::string& target, const std::string& token,
                   const std::string& body = "") {
    ApiRequest r;
    r.method = method;
    r.target = target;
    r.authorization = token.empty() ? "" : "Bearer " + token;
    r.body = body;
    r.client_address = "127.0.0.1:4242";
    r.request_id = "REQ1";
    return api_->Handle(r);
  }

  static std::string ErrorCode(const ApiResponse& r) {
    const json j = json::parse(r.body, nullptr, false);
    if (j.is_discarded() || !j.contains("error")) {
      return "<not a JSON error: " + r.body + ">";
    }
    return j["error"]["code"].get<std::string>();
  }

  keystore::Tenant MakeTenant(const std::string& name) {
    auto t = keys_->CreateTenant(name);
    EXPECT_OK(t);
    return t.ok() ? *t : keystore::Tenant{};
  }

  test_support::TempDir dir_{"admin-api"};
  std::unique_ptr<keystore::Keystore> keys_;
  std::unique_ptr<audit::AuditLog> log_;
  FakeRecorder recorder_;
  std::unique_ptr<service::KeyLifecycle> lifecycle_;
  std::unique_ptr<AdminApi> api_;
  std::string admin_token_;
  std::string auditor_token_;
};

TEST_F(AdminApiTest, TokensHaveThePrefixAndOnlyTheirHashIsStored) {
  EXPECT_TRUE(admin_token_.starts_with(keystore::kAdminTokenPrefix));
  EXPECT_EQ(admin_token_.size(), keystore::kAdminTokenPrefix.size() + 43);
  EXPECT_NE(admin_token_, auditor_token_);
  // The keystore file never holds the token itself.
  std::string bytes;
  for (const char* name : {"/keystore.db", "/keystore.db-wal"}) {
    std::FILE* f = std::fopen((dir_.str() + name).c_str(), "rb");
    if (f == nullptr) {
      continue;
    }
    char buf[4096];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
      bytes.append(buf, n);
    }
    std::fclose(f);
  }
  EXPECT_NE(bytes.find("alice"), std::string::npos);
  EXPECT_EQ(bytes.find(admin_token_.substr(keystore::kAdminTokenPrefix.size())), std::string::npos);
}

TEST_F(AdminApiTest, MissingOrUnknownTokenIs401) {
  EXPECT_EQ(Call("GET", "/tenants", "").status, 401);
  EXPECT_EQ(ErrorCode(Call("GET", "/tenants", "")), "unauthenticated");
  EXPECT_EQ(Call("GET", "/tenants", "coffre_adm_notatoken").status, 401);
  EXPECT_EQ(Call("GET", "/tenants", admin_token_ + "x").status, 401);
  ApiRequest basic;
  basic.method = "GET";
  basic.target = "/tenants";
  basic.authorization = "Basic " + admin_token_;
  EXPECT_EQ(api_->Handle(basic).status, 401);
  EXPECT_EQ(Call("GET", "/audit/public-key", "").status, 401);
}

TEST_F(AdminApiTest, BearerSchemeIsCaseInsensitive) {
  ApiRequest r;
  r.method = "GET";
  r.target = "/tenants";
  r.authorization = "bearer " + admin_token_;
  EXPECT_EQ(api_->Handle(r).status, 200);
}

TEST_F(AdminApiTest, DisabledCredentialIs401FromTheNextRequest) {
  EXPECT_EQ(Call("GET", "/tenants", admin_token_).status, 200);
  ASSERT_OK(keys_->DisableAdminCredential("alice"));
  EXPECT_EQ(Call("GET", "/tenants", admin_token_).status, 401);
  EXPECT_THAT(keys_->DisableAdminCredential("alice"), StatusIs(StatusCode::kFailedPrecondition));
  EXPECT_THAT(keys_->DisableAdminCredential("nobody"), StatusIs(StatusCode::kNotFound));
}

TEST_F(AdminApiTest, CredentialCreationAndDisablingAreKeyEvents) {
  ASSERT_OK(keys_->DisableAdminCredential("audrey"));
  auto events = keys_->ListKeyEvents("");
  ASSERT_OK(events);
  std::vector<std::string> names;
  for (const auto& e : *events) {
    names.push_back(e.event + " " + e.detail);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"admin-credential-created alice (admin)",
                                             "admin-credential-created audrey (auditor)",
                                             "admin-credential-disabled audrey"}));
  EXPECT_THAT(keys_->CreateAdminCredential("audrey", keystore::AdminRole::kAdmin).status(),
              StatusIs(StatusCode::kAlreadyExists));
  EXPECT_THAT(keys_->CreateAdminCredential("Bad Name", keystore::AdminRole::kAdmin).status(),
              StatusIs(StatusCode::kInvalidArgument));
}

TEST_F(AdminApiTest, AuditorTokenCannotReachAdminEndpoints) {
  MakeTenant("acme");
  for (const auto& [method, target] : std::vector<std::pair<std::string, std::string>>{
           {"GET", "/tenants"},
           {"POST", "/tenants"},
           {"GET", "/tenants/acme/access-keys"},
           {"POST", "/tenants/acme/access-keys"},
           {"POST", "/tenants/acme/access-keys/COAAAAAAAAAAAAAAAAAA/disable"},
           {"POST", "/tenants/acme/access-keys/COAAAAAAAAAAAAAAAAAA/enable"},
           {"DELETE", "/tenants/acme/access-keys/COAAAAAAAAAAAAAAAAAA"},
           {"GET", "/tenants/acme/keys"},
           {"POST", "/tenants/acme/keys/rotate"}}) {
    auto r = Call(method, target, auditor_token_, R"({"name":"x"})");
    EXPECT_EQ(r.status, 403) << method << " " << target << ": " << r.body;
    EXPECT_EQ(ErrorCode(r), "forbidden");
  }
  EXPECT_TRUE(recorder_.events().empty());
}

TEST_F(AdminApiTest, AdminTokenCannotReadTheAuditLog) {
  MakeTenant("acme");
  EXPECT_EQ(Call("GET", "/audit/export?tenant=acme", admin_token_).status, 403);
  EXPECT_EQ(Call("GET", "/audit/public-key", admin_token_).status, 403);
}

TEST_F(AdminApiTest, UnknownPathIs404AndWrongMethodIs405BeforeAuthentication) {
  EXPECT_EQ(Call("GET", "/nope", admin_token_).status, 404);
  EXPECT_EQ(Call("GET", "/tenants/", admin_token_).status, 404);
  EXPECT_EQ(Call("GET", "/tenants//keys", admin_token_).status, 404);
  EXPECT_EQ(Call("GET", "/audit/other", auditor_token_).status, 404);
  auto r = Call("DELETE", "/tenants", "");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.allow, "GET, POST");
  EXPECT_EQ(ErrorCode(r), "method_not_allowed");
  EXPECT_EQ(Call("GET", "/tenants/acme/keys/rotate", admin_token_).status, 405);
  EXPECT_EQ(Call("POST", "/audit/export", auditor_token_).status, 405);
  EXPECT_TRUE(AdminApi::Handles("/tenants/acme/keys"));
  EXPECT_FALSE(AdminApi::Handles("/health/ready"));
  EXPECT_FALSE(AdminApi::Handles("/metrics"));
}

TEST_F(AdminApiTest, CreateTenantIsAuditedWithTheCredentialAndPeer) {
  auto r = Call("POST", "/tenants", admin_token_, R"({"name":"acme"})");
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(r.credential, "alice");
  const json j = json::parse(r.body);
  EXPECT_EQ(j["name"], "acme");
  // As `coffre tenant create`: with its first access key, whose secret is in the answer once.
  EXPECT_EQ(j["access_key"]["secret_access_key"].get<std::string>().size(), 40u);
  const auto events = recorder_.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].operation, audit::Operation::kAccessKeyCreate);
  EXPECT_EQ(events[1].request.action, "admin-api:tenant create by alice");
  EXPECT_EQ(events[0].operation, audit::Operation::kTenantKeyCreate);
  EXPECT_EQ(events[0].request.action, "admin-api:tenant create by alice");
  EXPECT_EQ(events[0].request.access_key_id, "alice");
  EXPECT_EQ(events[0].request.client_address, "127.0.0.1:4242");
  EXPECT_EQ(events[0].request.request_id, "REQ1");
  // A repeated creation is refused and not recorded a second time.
  EXPECT_EQ(Call("POST", "/tenants", admin_token_, R"({"name":"acme"})").status, 409);
  EXPECT_EQ(recorder_.events().size(), 2u);
  auto listed = Call("GET", "/tenants", admin_token_);
  ASSERT_EQ(listed.status, 200);
  EXPECT_EQ(json::parse(listed.body)["tenants"].size(), 1u);
}

TEST_F(AdminApiTest, MalformedBodiesAre400) {
  EXPECT_EQ(ErrorCode(Call("POST", "/tenants", admin_token_, "{not json")), "malformed_json");
  EXPECT_EQ(Call("POST", "/tenants", admin_token_, "").status, 400);
  EXPECT_EQ(Call("POST", "/tenants", admin_token_, "[1,2]").status, 400);
  EXPECT_EQ(Call("POST", "/tenants", admin_token_, R"({"name": 7})").status, 400);
  EXPECT_EQ(Call("POST", "/tenants", admin_token_, R"({"name": "Not Valid"})").status, 400);
  EXPECT_TRUE(recorder_.events().empty());
}

TEST_F(AdminApiTest, UnknownTenantIs404) {
  EXPECT_EQ(Call("GET", "/tenants/ghost/access-keys", admin_token_).status, 404);
  EXPECT_EQ(Call("POST", "/tenants/ghost/keys/rotate", admin_token_).status, 404);
  EXPECT_EQ(Call("GET", "/tenants/ghost/keys", admin_token_).status, 404);
  EXPECT_EQ(Call("GET", "/audit/export?tenant=ghost", auditor_token_).status, 404);
  EXPECT_TRUE(recorder_.events().empty());
}

TEST_F(AdminApiTest, AccessKeyLifecycleThroughTheApi) {
  MakeTenant("acme");
  auto created = Call("POST", "/tenants/acme/access-keys", admin_token_);
  ASSERT_EQ(created.status, 201) << created.body;
  const json k = json::parse(created.body);
  const std::string id = k["access_key_id"];
  EXPECT_EQ(k["secret_access_key"].get<std::string>().size(), 40u);
  auto listed = json::parse(Call("GET", "/tenants/acme/access-keys", admin_token_).body);
  ASSERT_EQ(listed["access_keys"].size(), 1u);
  EXPECT_FALSE(listed["access_keys"][0].contains("secret_access_key"));
  EXPECT_TRUE(listed["access_keys"][0]["last_used"].is_null());
  EXPECT_EQ(Call("POST", "/tenants/acme/access-keys/" + id + "/disable", admin_token_).status, 200);
  EXPECT_FALSE(json::parse(Call("GET", "/tenants/acme/access-keys", admin_token_).body)["access_keys"][0]["enabled"]);
  EXPECT_EQ(Call("POST", "/tenants/acme/access-keys/" + id + "/enable", admin_token_).status, 200);
  EXPECT_EQ(Call("DELETE", "/tenants/acme/access-keys/" + id, admin_token_).status, 200);
  EXPECT_EQ(Call("DELETE", "/tenants/acme/access-keys/" + id, admin_token_).status, 404);
  std::vector<std::string> actions;
  for (const auto& e : recorder_.events()) {
    actions.push_back(e.request.action);
  }
  EXPECT_EQ(actions,
            (std::vector<std::string>{"admin-api:access-key create by alice", "admin-api:access-key disable by alice",
                                      "admin-api:access-key enable by alice", "admin-api:access-key delete by alice"}));
}

TEST_F(AdminApiTest, RotationIsRecordedOnceAndListed) {
  MakeTenant("acme");
  auto r = Call("POST", "/tenants/acme/keys/rotate", admin_token_);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body)["active_version"], 2);
  const auto events = recorder_.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].operation, audit::Operation::kTenantKeyRotate);
  EXPECT_EQ(events[0].request.action, "admin-api:key rotate by alice");
  auto versions = json::parse(Call("GET", "/tenants/acme/keys", admin_token_).body);
  ASSERT_EQ(versions["versions"].size(), 2u);
  EXPECT_EQ(versions["versions"][1]["state"], "active");
  EXPECT_TRUE(versions["named_keys"].empty());
}

TEST_F(AdminApiTest, NamedKeysAreListedWithTheTenantsKeys) {
  auto tenant = MakeTenant("acme");
  auto kept = keys_->CreateNamedKey(tenant.id, "customer-1");
  auto gone = keys_->CreateNamedKey(tenant.id, "customer-2");
  ASSERT_OK(kept);
  ASSERT_OK(gone);
  ASSERT_OK(keys_->DestroyNamedKey(gone->ref()));
  auto r = Call("GET", "/tenants/acme/keys", admin_token_);
  ASSERT_EQ(r.status, 200) << r.body;
  const json named = json::parse(r.body)["named_keys"];
  ASSERT_EQ(named.size(), 2u);
  EXPECT_EQ(named[0]["name"], "customer-1");
  EXPECT_EQ(named[0]["key_id"], keystore::KeyIdAsUuid(kept->key_id));
  EXPECT_TRUE(named[0]["destroyed"].is_null());
  EXPECT_EQ(named[1]["name"], "customer-2");
  EXPECT_TRUE(named[1]["destroyed"].is_string());
}

TEST_F(AdminApiTest, UnwritableAuditLogIs503AndChangesNothing) {
  auto tenant = MakeTenant("acme");
  recorder_.set_failing(true);
  auto r = Call("POST", "/tenants/acme/keys/rotate", admin_token_);
  EXPECT_EQ(r.status, 503) << r.body;
  EXPECT_EQ(ErrorCode(r), "unavailable");
  auto versions = keys_->ListKeyVersions(tenant.id);
  ASSERT_OK(versions);
  EXPECT_EQ(versions->size(), 1u);
  EXPECT_EQ(Call("POST", "/tenants/acme/access-keys", admin_token_).status, 503);
  auto keys = keys_->ListAccessKeys(tenant.id);
  ASSERT_OK(keys);
  EXPECT_TRUE(keys->empty());
}

TEST_F(AdminApiTest, ExportReturnsAVerifiableBundle) {
  auto tenant = MakeTenant("acme");
  audit::Event e;
  e.operation = audit::Operation::kTenantKeyRotate;
  e.tenant = tenant.id;
  e.key_id = tenant.id;
  e.key_version = 2;
  ASSERT_OK(log_->Record(e));
  auto r = Call("GET", "/audit/export?tenant=acme&format=jsonl", auditor_token_);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/x-ndjson");
  auto parsed = audit::ParseBundle(r.body);
  ASSERT_OK(parsed);
  EXPECT_EQ(parsed->data.records.size(), 1u);
  auto report = audit::VerifyBundle(*parsed, log_->public_key());
  ASSERT_OK(report);
  EXPECT_TRUE(report->ok());
  auto csv =
      Call("GET", "/audit/export?tenant=acme&format=csv&from=2000-01-01&to=2999-01-01T00%3A00%3A00Z", auditor_token_);
  EXPECT_EQ(csv.status, 200) << csv.body;
  EXPECT_TRUE(csv.content_type.starts_with("text/csv"));
  auto key = Call("GET", "/audit/public-key", auditor_token_);
  ASSERT_EQ(key.status, 200);
  EXPECT_EQ(json::parse(key.body)["public_key"], audit::EncodePublicKey(log_->public_key()));
}

TEST_F(AdminApiTest, DualControlRequestAndGrantByTwoAdmins) {
  MakeTenant("acme");
  auto bob = keys_->CreateAdminCredential("bob", keystore::AdminRole::kAdmin);
  ASSERT_OK(bob);
  recorder_.clear();

  const ApiResponse requested = Call("POST", "/approvals", admin_token_,
                                     R"({"operation": "tenant_key.destroy", "tenant": "acme", "version": 1})");
  ASSERT_EQ(requested.status, 201) << requested.body;
  const json a = json::parse(requested.body);
  const std::string id = a["id"].get<std::string>();
  EXPECT_EQ(a["state"], "pending");
  EXPECT_EQ(a["tenant"], "acme");
  EXPECT_EQ(a["version"], 1);
  EXPECT_EQ(a["requested_by"], "alice");

  // The requester cannot grant it; the auditor cannot reach it; a second admin can, once.
  const ApiResponse self = Call("POST", "/approvals/" + id + "/approve", admin_token_);
  EXPECT_EQ(self.status, 403) << self.body;
  EXPECT_EQ(Call("POST", "/approvals/" + id + "/approve", auditor_token_).status, 403);
  const ApiResponse granted = Call("POST", "/approvals/" + id + "/approve", bob->token);
  ASSERT_EQ(granted.status, 200) << granted.body;
  EXPECT_EQ(json::parse(granted.body)["state"], "approved");
  EXPECT_EQ(json::parse(granted.body)["approved_by"], "bob");
  EXPECT_EQ(Call("POST", "/approvals/" + id + "/approve", bob->token).status, 409);

  const ApiResponse listed = Call("GET", "/approvals", bob->token);
  ASSERT_EQ(listed.status, 200);
  const json l = json::parse(listed.body);
  EXPECT_EQ(l["dual_control"], false);
  ASSERT_EQ(l["approvals"].size(), 1u);
  EXPECT_EQ(l["approvals"][0]["id"], id);

  const auto events = recorder_.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].operation, audit::Operation::kApprovalRequest);
  EXPECT_EQ(events[0].request.access_key_id, "alice");
  EXPECT_EQ(events[0].request.client_address, "127.0.0.1:4242");
  EXPECT_EQ(events[1].operation, audit::Operation::kApprovalGrant);
  EXPECT_EQ(events[1].request.access_key_id, "bob");
}

TEST_F(AdminApiTest, DualControlBadInput) {
  MakeTenant("acme");
  EXPECT_EQ(Call("POST", "/approvals", admin_token_, "not json").status, 400);
  EXPECT_EQ(Call("POST", "/approvals", admin_token_, R"({"operation": "tenant_key.rotate", "tenant": "acme"})").status,
            400);
  EXPECT_EQ(Call("POST", "/approvals", admin_token_, R"({"operation": "tenant.shred"})").status, 400);
  EXPECT_EQ(Call("POST", "/approvals", admin_token_, R"({"operation": "tenant_key.destroy", "tenant": "acme"})").status,
            400);
  EXPECT_TRUE(recorder_.events().empty()) << "a malformed request must leave no record";
  EXPECT_EQ(Call("POST", "/approvals", admin_token_, R"({"operation": "tenant.shred", "tenant": 7})").status, 400);
  EXPECT_EQ(Call("POST", "/approvals", admin_token_, R"({"operation": "tenant.shred", "tenant": "nope"})").status, 404);
  EXPECT_EQ(Call("POST", "/approvals", admin_token_,
                 R"({"operation": "tenant_key.destroy", "tenant": "acme", "version": -1})")
                .status,
            400);
  EXPECT_EQ(Call("POST", "/approvals/apr-0000000000000000/approve", admin_token_).status, 404);
  EXPECT_EQ(Call("DELETE", "/approvals", admin_token_).status, 405);
  EXPECT_EQ(Call("GET", "/approvals/x/approve", admin_token_).status, 405);
  EXPECT_EQ(Call("POST", "/approvals/x", admin_token_).status, 404);
  EXPECT_TRUE(keys_->ListApprovals(10)->empty());
  recorder_.set_failing(true);
  EXPECT_EQ(Call("POST", "/approvals", admin_token_, R"({"operation": "root_key.rotate"})").status, 503);
  EXPECT_TRUE(keys_->ListApprovals(10)->empty());
}

TEST_F(AdminApiTest, ExportBadInputIs400) {
  MakeTenant("acme");
  EXPECT_EQ(Call("GET", "/audit/export", auditor_token_).status, 400);
  EXPECT_EQ(Call("GET", "/audit/export?tenant=acme&format=xml", auditor_token_).status, 400);
  EXPECT_EQ(Call("GET", "/audit/export?tenant=acme&from=yesterday", auditor_token_).status, 400);
  auto reversed = Call("GET", "/audit/export?tenant=acme&from=2026-02-01&to=2026-01-01", auditor_token_);
  EXPECT_EQ(reversed.status, 400);
  EXPECT_NE(reversed.body.find("reversed"), std::string::npos);
  EXPECT_EQ(Call("GET", "/audit/export?tenant=acme&tenant=other", auditor_token_).status, 400);
  EXPECT_EQ(Call("GET", "/audit/export?tenant=%zz", auditor_token_).status, 400);
}

// Through the listener: what the HTTP handler decides.
class AdminApiHttpTest : public AdminApiTest {
 protected:
  void SetUp() override {
    AdminApiTest::SetUp();
    handler_ = std::make_unique<AdminHandler>(registry_, pool_, std::vector<ReadinessCheck>{}, api_.get());
    ASSERT_TRUE(server_.Start(*handler_));
  }

  void TearDown() override {
    server_.Stop();
    pool_.join();
    AdminApiTest::TearDown();
  }

  http::testing::RawResponse Send(const std::string& raw) {
    http::testing::RawClient client(server_.port());
    EXPECT_TRUE(client.connected());
    EXPECT_TRUE(client.Send(raw));
    auto response = client.ReadResponse();
    EXPECT_TRUE(response.has_value());
    return response.value_or(http::testing::RawResponse{});
  }

  ops::Registry registry_;
  boost::asio::thread_pool pool_{2};
  std::unique_ptr<AdminHandler> handler_;
  test_support::LoopbackServer server_;
};

TEST_F(AdminApiHttpTest, UnauthenticatedAnswerCarriesWwwAuthenticateAndJson) {
  auto r = Send("GET /tenants HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.Header("WWW-Authenticate"), R"(Bearer realm="coffre-admin")");
  EXPECT_EQ(r.Header("Content-Type"), "application/json");
  EXPECT_FALSE(r.Header("X-Request-Id").empty());
  EXPECT_FALSE(json::parse(r.body, nullptr, false).is_discarded());
}

TEST_F(AdminApiHttpTest, BodyOverTheLimitIs413AndNothingIsCreated) {
  // Only the header is sent: the answer must come from the Content-Length, before any body byte.
  auto r = Send("POST /tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + admin_token_ +
                "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(AdminApi::kMaxBodyBytes + 1) +
                "\r\n\r\n");
  EXPECT_EQ(r.status, 413);
  EXPECT_TRUE(recorder_.events().empty());
}

TEST_F(AdminApiHttpTest, CreateTenantOverHttp) {
  const std::string body = R"({"name":"acme"})";
  auto r = Send("POST /tenants HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + admin_token_ +
                "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(recorder_.events().size(), 2u);
}

TEST_F(AdminApiHttpTest, HealthStillAnswersWithoutAToken) {
  EXPECT_EQ(Send("GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n").status, 200);
}

}  // namespace
}  // namespace coffre::admin
