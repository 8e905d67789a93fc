#include "coffre/ops/rate_limiter.h"

#include <algorithm>
#include <cmath>
#include <utility>

namespace coffre::ops {

TokenBucket::TokenBucket(RateLimit limit, std::chrono::system_clock::time_point now)
    : limit_(limit), tokens_(std::max(1.0, limit.burst)), last_(now) {}

void TokenBucket::Refill(std::chrono::system_clock::time_point now) {
  // The wall clock may step back (NTP): no refill then, and the bucket waits for it to catch up
  // rather than hand out a burst later.
  if (now <= last_) {
    return;
  }
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  tokens_ = std::min(std::max(1.0, limit_.burst), tokens_ + elapsed * limit_.requests_per_second);
  last_ = now;
}

bool TokenBucket::TryTake(std::chrono::system_clock::time_point now, std::chrono::milliseconds* retry_after) {
  if (limit_.unlimited()) {
    return true;
  }
  Refill(now);
  if (tokens_ >= 1.0) {
    tokens_ -= 1.0;
    return true;
  }
  if (retry_after != nullptr) {
    const double seconds = (1.0 - tokens_) / limit_.requests_per_second;
    *retry_after = std::chrono::milliseconds(static_cast<int64_t>(std::ceil(seconds * 1000)));
  }
  return false;
}

void TokenBucket::Reconfigure(RateLimit limit, std::chrono::system_clock::time_point now) {
  Refill(now);
  limit_ = limit;
  tokens_ = std::min(tokens_, std::max(1.0, limit_.burst));
}

TenantRateLimiter::TenantRateLimiter(const Clock& clock) : clock_(clock) {}

void TenantRateLimiter::Configure(RateLimits limits) {
  std::lock_guard lock(mu_);
  limits_ = std::move(limits);
  ++generation_;  // each tenant picks its new limit at its next request
}

RateLimits TenantRateLimiter::limits() const {
  std::lock_guard lock(mu_);
  return limits_;
}

size_t TenantRateLimiter::tracked_tenants() const {
  std::lock_guard lock(mu_);
  return tenants_.size();
}

bool TenantRateLimiter::NeedsNames() const {
  // Tenant ids and names may look alike; any override might be a name, so ask when there is one.
  return !limits_.tenants.empty();
}

RateLimit TenantRateLimiter::LimitFor(std::string_view tenant_id, const std::optional<std::string>& name) const {
  if (auto it = limits_.tenants.find(tenant_id); it != limits_.tenants.end()) {
    return it->second;
  }
  if (name) {
    if (auto it = limits_.tenants.find(*name); it != limits_.tenants.end()) {
      return it->second;
    }
  }
  return limits_.default_limit;
}

bool TenantRateLimiter::Admit(std::string_view tenant_id, const std::function<std::optional<std::string>()>& name_of) {
  bool need_name = false;
  {
    std::lock_guard lock(mu_);
    auto it = tenants_.find(tenant_id);
    if (it != tenants_.end() && it->second.generation == generation_) {
      return !it->second.bucket || it->second.bucket->TryTake(clock_.Now());
    }
    if (limits_.default_limit.unlimited() && limits_.tenants.empty()) {
      return true;  // no limit at all: keep no state
    }
    need_name = NeedsNames() && name_of && (it == tenants_.end() || !it->second.name);
  }
  // The name may take a database read: never under the lock every request takes.
  std::optional<std::string> resolved;
  if (need_name) {
    resolved = name_of();
  }
  std::lock_guard lock(mu_);
  const auto now = clock_.Now();
  auto it = tenants_.find(tenant_id);
  if (it == tenants_.end()) {
    it = tenants_.emplace(std::string(tenant_id), Tenant{}).first;
  }
  Tenant& t = it->second;
  if (resolved && !t.name) {
    t.name = std::move(resolved);
  }
  if (t.generation != generation_) {
    const RateLimit limit = LimitFor(tenant_id, t.name);
    if (limit.unlimited()) {
      t.bucket.reset();
    } else if (t.bucket) {
      t.bucket->Reconfigure(limit, now);
    } else {
      t.bucket.emplace(limit, now);
    }
    t.generation = generation_;
  }
  return !t.bucket || t.bucket->TryTake(now);
}

void TenantBodyLimiter::Configure(uint32_t max_per_tenant) {
  std::lock_guard lock(mu_);
  max_per_tenant_ = max_per_tenant;
}

// Given back by whichever copy of the slot goes last.
struct TenantBodyLimiter::Held {
  Held(TenantBodyLimiter* l, std::string_view tenant) : limiter(l), tenant_id(tenant) {}
  Held(const Held&) = delete;
  Held& operator=(const Held&) = delete;
  ~Held() {
    if (counted) limiter->Release(tenant_id);
  }
  TenantBodyLimiter* limiter;
  std::string tenant_id;
  bool counted = false;
};

TenantBodyLimiter::Slot TenantBodyLimiter::TryAcquire(std::string_view tenant_id) {
  auto held = std::make_shared<Held>(this, tenant_id);  // allocated outside the lock
  std::lock_guard lock(mu_);
  auto it = counts_.find(tenant_id);
  if (max_per_tenant_ != 0 && it != counts_.end() && it->second >= max_per_tenant_) {
    return nullptr;
  }
  if (it == counts_.end()) {
    it = counts_.emplace(held->tenant_id, 0).first;
  }
  ++it->second;
  ++total_;
  held->counted = true;
  return held;
}

void TenantBodyLimiter::Release(const std::string& tenant_id) {
  std::lock_guard lock(mu_);
  auto it = counts_.find(tenant_id);
  if (it == counts_.end()) return;
  --total_;
  if (--it->second == 0) counts_.erase(it);
}

uint64_t TenantBodyLimiter::in_flight() const {
  std::lock_guard lock(mu_);
  return total_;
}

uint32_t TenantBodyLimiter::in_flight(std::string_view tenant_id) const {
  std::lock_guard lock(mu_);
  auto it = counts_.find(tenant_id);
  return it == counts_.end() ? 0 : it->second;
}

}  // namespace coffre::ops
