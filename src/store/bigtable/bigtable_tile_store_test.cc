// BigtableTileStore against Google's Bigtable emulator (cbtemulator, started once per test
// process on a free loopback port and killed at exit), plus the client's retry logic against an
// in-process fake Bigtable service. Every test uses a fresh table. Without cbtemulator the
// emulator tests are skipped (and the conformance suite is not instantiated).
#include "store/bigtable/bigtable_tile_store.h"

#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "common/metrics.h"
#include "common/mutex.h"
#include "store/bigtable/bigtable_client.h"
#include "store/bigtable/bigtable_emulator.h"
#include "store/bigtable/bigtable_util.h"
#include "store/key_codec.h"
#include "store/slot_store_conformance.h"
#include "store/tile_store_conformance.h"

namespace tessera::store {
namespace {

namespace pb = ::google::bigtable::v2;
namespace admin = ::google::bigtable::admin::v2;
namespace bs = bigtable_schema;
using namespace std::chrono_literals;

// ---- The shared emulator ----------------------------------------------------------------------

struct SharedEmulatorState {
  std::unique_ptr<BigtableEmulator> emulator;
  std::string error;
  bool tried = false;
};
SharedEmulatorState& Shared() {
  static SharedEmulatorState state;
  return state;
}

// Started on first use; null (with Shared().error) when it cannot run here.
BigtableEmulator* SharedEmulator() {
  SharedEmulatorState& s = Shared();
  if (!s.tried) {
    s.tried = true;
    absl::StatusOr<std::unique_ptr<BigtableEmulator>> e = BigtableEmulator::Start();
    if (e.ok()) {
      s.emulator = std::move(*e);
    } else {
      s.error = StatusMessage(e.status());
    }
  }
  return s.emulator.get();
}

// Kills the shared emulator when the tests end (a crash kills it through PR_SET_PDEATHSIG).
class EmulatorEnvironment : public ::testing::Environment {
 public:
  void TearDown() override { Shared().emulator.reset(); }
};
const ::testing::Environment* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new EmulatorEnvironment);

std::string NewTableUri() {
  static std::atomic<int> counter{0};
  return fmt::format("bigtable://test-project/test-instance/t{}_{}", ::getpid(),
                     counter.fetch_add(1));
}

BigtableOptions EmulatorOptions(const BigtableEmulator& emulator) {
  BigtableOptions o;
  o.endpoint = emulator.endpoint();
  o.retry.max_attempts = 4;
  o.retry.initial_backoff_ms = 5;
  o.retry.max_backoff_ms = 50;
  o.retry.total_timeout_ms = 10'000;
  o.rpc_timeout_ms = 10'000;
  o.stream_timeout_ms = 30'000;
  return o;
}

std::unique_ptr<BigtableTileStore> OpenOrDie(const std::string& uri, const BigtableOptions& o) {
  absl::StatusOr<std::unique_ptr<BigtableTileStore>> store = OpenBigtableStore(uri, o);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? std::move(*store) : nullptr;
}

// A fresh table (no base retention) and a store on it.
std::unique_ptr<BigtableTileStore> NewStore(const BigtableOptions& o, std::string* uri_out) {
  const std::string uri = NewTableUri();
  absl::StatusOr<BigtableTableSetup> setup = CreateBigtableTable(uri, o, 0);
  EXPECT_TRUE(setup.ok()) << setup.status();
  if (!setup.ok()) return nullptr;
  EXPECT_TRUE(setup->created);
  if (uri_out != nullptr) *uri_out = uri;
  return OpenOrDie(uri, o);
}

// ---- The TileStore conformance suite ---------------------------------------------------------

TileStoreFactory EmulatorFactory(std::string name, std::function<void(BigtableOptions*)> tweak) {
  return TileStoreFactory{std::move(name),
                          [tweak](const std::string&) -> std::unique_ptr<TileStore> {
                            BigtableEmulator* emulator = SharedEmulator();
                            if (emulator == nullptr) {
                              ADD_FAILURE() << "cbtemulator did not start: " << Shared().error;
                              return nullptr;
                            }
                            BigtableOptions o = EmulatorOptions(*emulator);
                            tweak(&o);
                            return NewStore(o, nullptr);
                          }};
}

std::vector<TileStoreFactory> ConformanceFactories() {
  if (BigtableEmulator::FindBinary().empty()) return {};
  return {
      EmulatorFactory("Emulator", [](BigtableOptions*) {}),
      // Every read fetches the commit state; every request is tiny (batching, parallel
      // MutateRows, chunked key reads).
      EmulatorFactory("NoCacheSmallRequests",
                      [](BigtableOptions* o) {
                        o->commit_state_cache_ms = 0;
                        o->max_rows_per_request = 7;
                        o->max_request_bytes = 4096;
                        o->max_parallel_requests = 3;
                        o->max_keys_per_read = 5;
                        o->max_remembered_tiles = 3;
                      }),
  };
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(TileStoreConformanceTest);
INSTANTIATE_TEST_SUITE_P(Bigtable, TileStoreConformanceTest,
                         ::testing::ValuesIn(ConformanceFactories()), TileStoreFactoryName);

// ---- The SlotStore conformance suite ---------------------------------------------------------

BigtableTileStore& AsBigtable(TileStore& store) {
  return *dynamic_cast<BigtableTileStore*>(&store);
}

std::vector<SlotStoreFactory> SlotConformanceFactories() {
  if (BigtableEmulator::FindBinary().empty()) return {};
  SlotStoreFactory f;
  f.name = "Emulator";
  f.make = [](const std::string&) -> std::unique_ptr<TileStore> {
    BigtableEmulator* emulator = SharedEmulator();
    if (emulator == nullptr) {
      ADD_FAILURE() << "cbtemulator did not start: " << Shared().error;
      return nullptr;
    }
    return NewStore(EmulatorOptions(*emulator), nullptr);
  };
  f.make_peer = [](TileStore& store) -> std::unique_ptr<TileStore> {
    return OpenOrDie(AsBigtable(store).uri().ToString(), EmulatorOptions(*SharedEmulator()));
  };
  f.crash_before_next_commit_row = [](TileStore& store) {
    auto fired = std::make_shared<std::atomic<bool>>(false);
    BigtableTileStore::TestHooks hooks;
    hooks.before_commit_row = [fired](std::string_view) {
      return fired->exchange(true) ? absl::OkStatus() : Unavailable("killed before the commit row");
    };
    AsBigtable(store).SetTestHooks(hooks);
  };
  f.fail_next_commit_after_applying = [](TileStore& store) {
    auto fired = std::make_shared<std::atomic<bool>>(false);
    BigtableTileStore::TestHooks hooks;
    hooks.after_commit_row = [fired](std::string_view) {
      return fired->exchange(true) ? absl::OkStatus() : absl::DeadlineExceededError("reply lost");
    };
    AsBigtable(store).SetTestHooks(hooks);
  };
  f.set_before_commit_hook = [](TileStore& store, std::function<void(std::string_view)> hook) {
    BigtableTileStore::TestHooks hooks;
    if (hook) {
      hooks.before_commit_row = [hook](std::string_view slot) {
        hook(slot);
        return absl::OkStatus();
      };
    }
    AsBigtable(store).SetTestHooks(std::move(hooks));
  };
  return {f};
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(SlotStoreConformanceTest);
INSTANTIATE_TEST_SUITE_P(Bigtable, SlotStoreConformanceTest,
                         ::testing::ValuesIn(SlotConformanceFactories()), SlotStoreFactoryName);

// ---- Helpers for the emulator tests ----------------------------------------------------------

// Set in the child process of SigkilledOwnerLeavesExactlyOneCommittedFlush: "<fd> <endpoint>
// <uri>".
constexpr char kCrashChildEnv[] = "TESSERA_BIGTABLE_CRASH_CHILD";

class BigtableStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::getenv(kCrashChildEnv) != nullptr) return;  // the child uses the parent's emulator
    emulator_ = SharedEmulator();
    if (emulator_ == nullptr) GTEST_SKIP() << "no Bigtable emulator: " << Shared().error;
    options_ = EmulatorOptions(*emulator_);
  }

  std::unique_ptr<BigtableTileStore> NewStoreHere() { return NewStore(options_, &uri_); }
  std::unique_ptr<BigtableTileStore> OpenHere() { return OpenOrDie(uri_, options_); }
  std::unique_ptr<BigtableClient> RawClient() {
    absl::StatusOr<BigtableUri> uri = ParseBigtableUri(uri_);
    EXPECT_TRUE(uri.ok());
    absl::StatusOr<std::unique_ptr<BigtableClient>> c = BigtableClient::Create(*uri, options_);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }
  // Every cell of one row, as (family:qualifier-hex, value).
  std::vector<BigtableCell> RawRow(const std::string& key) {
    std::unique_ptr<BigtableClient> c = RawClient();
    pb::RowSet rows;
    rows.add_row_keys(key);
    std::vector<BigtableCell> cells;
    EXPECT_TRUE(c->ReadRows(rows, nullptr, [&](BigtableRow&& r) {
                   cells = std::move(r.cells);
                   return absl::OkStatus();
                 }).ok());
    return cells;
  }

  BigtableEmulator* emulator_ = nullptr;
  BigtableOptions options_;
  std::string uri_;
};

using Tiles = std::vector<std::pair<int64_t, std::string>>;

Tiles ScanAll(TileStore& store, uint32_t view, std::string_view key, Resolution r,
              const StoreSnapshot* snap = nullptr) {
  Tiles out;
  absl::Status s = store.ScanAt(
      snap, view, key, r, std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(),
      [&](int64_t start, std::string_view v) { out.emplace_back(start, std::string(v)); });
  EXPECT_TRUE(s.ok()) << s;
  return out;
}

std::optional<std::string> GetOne(TileStore& store, const TileKey& key) {
  std::vector<std::optional<std::string>> values;
  absl::Status s = store.MultiGet({key}, &values);
  EXPECT_TRUE(s.ok()) << s;
  return s.ok() ? values[0] : std::nullopt;
}

std::optional<std::string> GetSlotOne(SlotStore& store, std::string_view slot, const TileKey& key) {
  std::vector<std::optional<std::string>> values;
  absl::Status s = store.MultiGetSlot(slot, {key}, &values);
  EXPECT_TRUE(s.ok()) << s;
  return s.ok() ? values[0] : std::nullopt;
}

WriteBatch TilesAndMeta(std::vector<std::pair<TileKey, std::string>> tiles,
                        std::vector<std::pair<std::string, std::string>> meta = {}) {
  WriteBatch b;
  b.tiles = std::move(tiles);
  b.meta = std::move(meta);
  return b;
}

const TileKey kX{1, "user", Resolution::kBase, 300'000};
const TileKey kY{1, "user", Resolution::kHour, 0};

// ---- URI -------------------------------------------------------------------------------------

TEST(BigtableUriTest, ParsesTheThreeParts) {
  absl::StatusOr<BigtableUri> u = ParseBigtableUri("bigtable://my-proj/my-inst/tiles_1.v2");
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->project, "my-proj");
  EXPECT_EQ(u->instance, "my-inst");
  EXPECT_EQ(u->table, "tiles_1.v2");
  EXPECT_EQ(u->InstanceName(), "projects/my-proj/instances/my-inst");
  EXPECT_EQ(u->TableName(), "projects/my-proj/instances/my-inst/tables/tiles_1.v2");
  EXPECT_EQ(u->ToString(), "bigtable://my-proj/my-inst/tiles_1.v2");
  EXPECT_TRUE(ParseBigtableUri("bigtable://example.com:proj/i/t").ok());  // domain-scoped project
}

TEST(BigtableUriTest, RejectsMalformedUrisWithAClearMessage) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "must start with bigtable://"},
      {"bigtable:/p/i/t", "must start with bigtable://"},
      {"rocksdb:///tmp/db", "must start with bigtable://"},
      {"bigtable://p/i", "2 parts"},
      {"bigtable://p", "1 part after"},
      {"bigtable://p/i/t/x", "4 parts"},
      {"bigtable://p/i/t/", "4 parts"},
      {"bigtable:///i/t", "PROJECT is empty"},
      {"bigtable://p//t", "INSTANCE is empty"},
      {"bigtable://p/i/", "TABLE is empty"},
      {"bigtable://p q/i/t", "PROJECT may only"},
      {"bigtable://p/i!/t", "INSTANCE may only"},
      {"bigtable://p/i/-t", "TABLE must match"},
      {"bigtable://p/i/t$", "TABLE must match"},
      {"bigtable://p/i/" + std::string(51, 'a'), "at most 50"},
  };
  for (const auto& [uri, why] : cases) {
    absl::StatusOr<BigtableUri> u = ParseBigtableUri(uri);
    ASSERT_FALSE(u.ok()) << uri;
    EXPECT_EQ(u.status().code(), absl::StatusCode::kInvalidArgument) << uri;
    const std::string msg = StatusMessage(u.status());
    EXPECT_NE(msg.find(why), std::string::npos) << uri << ": " << msg;
    EXPECT_NE(msg.find("bigtable://PROJECT/INSTANCE/TABLE"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'" + uri + "'"), std::string::npos) << msg;
  }
  EXPECT_TRUE(ParseBigtableUri("bigtable://p/i/" + std::string(50, 'a')).ok());
}

// ---- Table admin -----------------------------------------------------------------------------

TEST_F(BigtableStoreTest, OpenOfAMissingTableSaysToRunStoreInit) {
  const std::string uri = NewTableUri();
  absl::StatusOr<std::unique_ptr<BigtableTileStore>> s = OpenBigtableStore(uri, options_);
  ASSERT_EQ(s.status().code(), absl::StatusCode::kNotFound) << s.status();
  EXPECT_NE(StatusMessage(s.status()).find("run `tessera store init --store " + uri + "`"),
            std::string::npos)
      << s.status();
  BigtableOptions unchecked = options_;
  unchecked.check_table = false;
  EXPECT_TRUE(OpenBigtableStore(uri, unchecked).ok());
  EXPECT_EQ(OpenBigtableStore("bigtable://p/i", options_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

std::map<std::string, std::string> GcRules(BigtableClient& client) {
  absl::StatusOr<admin::Table> t = client.GetTable();
  EXPECT_TRUE(t.ok()) << t.status();
  std::map<std::string, std::string> out;
  if (!t.ok()) return out;
  for (const auto& [id, cf] : t->column_families()) out[id] = cf.gc_rule().ShortDebugString();
  return out;
}

TEST_F(BigtableStoreTest, CreateTableIsIdempotentAndKeepsGcRulesInLine) {
  uri_ = NewTableUri();
  absl::StatusOr<BigtableTableSetup> first = CreateBigtableTable(uri_, options_, 0);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(first->created);
  std::unique_ptr<BigtableClient> client = RawClient();
  EXPECT_EQ(GcRules(*client),
            (std::map<std::string, std::string>{
                {"b", ""}, {"m", "max_num_versions: 1"}, {"r", ""}, {"s", "max_num_versions: 1"}}));

  absl::StatusOr<BigtableTableSetup> again = CreateBigtableTable(uri_, options_, 0);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->created);
  EXPECT_TRUE(again->changes.empty()) << fmt::format("{}", fmt::join(again->changes, "; "));

  // A base retention: b gets a max-age rule, reported.
  absl::StatusOr<BigtableTableSetup> retention =
      CreateBigtableTable(uri_, options_, 7 * 86'400'000);
  ASSERT_TRUE(retention.ok()) << retention.status();
  EXPECT_FALSE(retention->created);
  ASSERT_EQ(retention->changes.size(), 1u);
  EXPECT_EQ(retention->changes[0], "column family b: GC rule none -> max_age 604800s");
  EXPECT_EQ(GcRules(*client)["b"], "max_age { seconds: 604800 }");
  absl::StatusOr<BigtableTableSetup> same = CreateBigtableTable(uri_, options_, 7 * 86'400'000);
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(same->changes.empty());
  absl::StatusOr<BigtableTableSetup> sub_second = CreateBigtableTable(uri_, options_, 1500);
  ASSERT_TRUE(sub_second.ok());
  EXPECT_EQ(sub_second->changes,
            std::vector<std::string>{"column family b: GC rule max_age 604800s -> max_age 1500ms"});

  // A family lost (or a table made by hand without it): Open refuses, init adds it back.
  admin::ModifyColumnFamiliesRequest::Modification drop;
  drop.set_id("m");
  drop.set_drop(true);
  ASSERT_TRUE(client->ModifyColumnFamilies({drop}).ok());
  absl::StatusOr<std::unique_ptr<BigtableTileStore>> open = OpenBigtableStore(uri_, options_);
  ASSERT_EQ(open.status().code(), absl::StatusCode::kFailedPrecondition) << open.status();
  EXPECT_NE(StatusMessage(open.status()).find("lacks column family m"), std::string::npos)
      << open.status();
  absl::StatusOr<BigtableTableSetup> repaired = CreateBigtableTable(uri_, options_, 0);
  ASSERT_TRUE(repaired.ok()) << repaired.status();
  EXPECT_EQ(repaired->changes,
            (std::vector<std::string>{"column family b: GC rule max_age 1500ms -> none",
                                      "created column family m (GC: max_versions 1)"}));
  EXPECT_TRUE(OpenBigtableStore(uri_, options_).ok());
  EXPECT_EQ(CreateBigtableTable(uri_, options_, -1).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(DeleteBigtableTable(uri_, options_).ok());
  EXPECT_EQ(DeleteBigtableTable(uri_, options_).code(), absl::StatusCode::kNotFound);
}

// The cell timestamp is the tile start, so a base-tile retention ages out old base tiles (in the
// background); rollups and slot rows have no age rule.
TEST_F(BigtableStoreTest, BaseRetentionAgesOutOldBaseTilesOnly) {
  uri_ = NewTableUri();
  ASSERT_TRUE(CreateBigtableTable(uri_, options_, 0).ok());
  // The emulator starts its GC loop only once column families are modified, not at CreateTable:
  // setting the retention on the existing table is that modification.
  ASSERT_TRUE(CreateBigtableTable(uri_, options_, 86'400'000).ok());
  std::unique_ptr<BigtableTileStore> store = OpenHere();
  ASSERT_NE(store, nullptr);
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  const int64_t recent = now_ms / 300'000 * 300'000;
  const TileKey old_base{1, "k", Resolution::kBase, 300'000};  // 1970
  const TileKey new_base{1, "k", Resolution::kBase, recent};
  const TileKey old_day{1, "k", Resolution::kDay, 0};
  ASSERT_TRUE(store
                  ->Write(TilesAndMeta({{old_base, "old"}, {new_base, "new"}, {old_day, "day"}},
                                       {{"pos", "1"}}))
                  .ok());
  Tiles base;
  for (int i = 0; i < 100; ++i) {
    base = ScanAll(*store, 1, "k", Resolution::kBase);
    if (base.size() == 1) break;
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(base, (Tiles{{recent, "new"}}));
  EXPECT_EQ(ScanAll(*store, 1, "k", Resolution::kDay), (Tiles{{0, "day"}}));
  EXPECT_EQ(store->GetMeta("pos").value_or(std::nullopt), "1");
}

// ---- Slots -----------------------------------------------------------------------------------

TEST_F(BigtableStoreTest, ClaimBumpsTheGenerationAndReturnsCommittedMeta) {
  std::unique_ptr<BigtableTileStore> store = NewStoreHere();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->slots(), store.get());
  absl::StatusOr<SlotClaim> c1 = store->ClaimSlot("plays/plays/3");
  ASSERT_TRUE(c1.ok()) << c1.status();
  EXPECT_EQ(c1->slot, "plays/plays/3");
  EXPECT_EQ(c1->generation, 1u);
  EXPECT_TRUE(c1->meta.empty());
  EXPECT_EQ(store->ClaimedGeneration("plays/plays/3"), 1u);
  ASSERT_TRUE(store
                  ->CommitSlot("plays/plays/3",
                               TilesAndMeta({{kX, "x1"}}, {{"offset", "10"}, {"lane", "5"}}))
                  .ok());
  absl::StatusOr<SlotClaim> c2 = store->ClaimSlot("plays/plays/3");
  ASSERT_TRUE(c2.ok()) << c2.status();
  EXPECT_EQ(c2->generation, 2u);
  EXPECT_EQ(c2->meta,
            (std::vector<std::pair<std::string, std::string>>{{"lane", "5"}, {"offset", "10"}}));
  // Other slots are independent.
  absl::StatusOr<SlotClaim> other = store->ClaimSlot("plays/plays/30");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->generation, 1u);
  EXPECT_TRUE(other->meta.empty());
  EXPECT_EQ(store->CommitSlot("never-claimed", WriteBatch{}).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(BigtableStoreTest, AFencedOwnerCanCommitNothing) {
  std::unique_ptr<BigtableTileStore> a = NewStoreHere();
  ASSERT_NE(a, nullptr);
  std::unique_ptr<BigtableTileStore> b = OpenHere();
  std::unique_ptr<BigtableTileStore> reader = OpenHere();
  const std::string slot = "plays/plays/0";
  ASSERT_TRUE(a->ClaimSlot(slot).ok());
  ASSERT_TRUE(a->CommitSlot(slot, TilesAndMeta({{kX, "a1"}, {kY, "a1h"}}, {{"offset", "1"}})).ok());

  absl::StatusOr<SlotClaim> claim = b->ClaimSlot(slot);  // a is a zombie from now on
  ASSERT_TRUE(claim.ok()) << claim.status();
  EXPECT_EQ(claim->generation, 2u);
  EXPECT_EQ(claim->meta, (std::vector<std::pair<std::string, std::string>>{{"offset", "1"}}));

  absl::Status fenced =
      a->CommitSlot(slot, TilesAndMeta({{kX, "a2"}, {kY, "a2h"}}, {{"offset", "2"}}));
  EXPECT_EQ(fenced.code(), absl::StatusCode::kFailedPrecondition) << fenced;
  EXPECT_NE(StatusMessage(fenced).find("fenced"), std::string::npos) << fenced;
  EXPECT_EQ(a->ClaimedGeneration(slot), std::nullopt);  // the claim is dropped
  EXPECT_EQ(a->CommitSlot(slot, TilesAndMeta({{kX, "a3"}})).code(),
            absl::StatusCode::kFailedPrecondition);

  // The zombie's cells were written but never become valid, for any reader.
  for (BigtableTileStore* s : {a.get(), b.get(), reader.get()}) {
    EXPECT_EQ(GetSlotOne(*s, slot, kX), "a1");
    EXPECT_EQ(ScanAll(*s, 1, "user", Resolution::kBase), (Tiles{{300'000, "a1"}}));
    EXPECT_EQ(s->GetMeta("offset").value_or(std::nullopt), "1");
  }
  // The new owner continues from the committed state; its cells supersede.
  EXPECT_EQ(GetSlotOne(*b, slot, kY), "a1h");
  ASSERT_TRUE(b->CommitSlot(slot, TilesAndMeta({{kX, "b1"}, {kY, "b1h"}}, {{"offset", "2"}})).ok());
  EXPECT_EQ(ScanAll(*reader, 1, "user", Resolution::kBase), (Tiles{{300'000, "b1"}}));
  EXPECT_EQ(ScanAll(*reader, 1, "user", Resolution::kHour), (Tiles{{0, "b1h"}}));
  EXPECT_EQ(reader->GetMeta("offset").value_or(std::nullopt), "2");
  // The new owner's write deleted the zombie's garbage and kept the replaced valid cell (a1,
  // which readers of the previous commit may still use): a1 (1:1) and b1 (2:1) remain.
  std::set<uint64_t> versions;
  for (const BigtableCell& cell : RawRow(EncodeTileKey(kX))) {
    versions.insert(bs::ParseTileQualifier(cell.qualifier)->version);
  }
  EXPECT_EQ(versions, (std::set<uint64_t>{bs::MakeVersion(1, 1), bs::MakeVersion(2, 1)}));
}

TEST_F(BigtableStoreTest, CellsWrittenButNotCommittedStayInvisible) {
  std::unique_ptr<BigtableTileStore> a = NewStoreHere();
  ASSERT_NE(a, nullptr);
  const std::string slot = "src";
  ASSERT_TRUE(a->ClaimSlot(slot).ok());
  ASSERT_TRUE(a->CommitSlot(slot, TilesAndMeta({{kX, "v1"}}, {{"offset", "100"}})).ok());

  // "Crash" after the cells of the second flush and before its commit.
  std::unique_ptr<BigtableTileStore> c = OpenHere();
  BigtableTileStore::TestHooks crash;
  crash.before_commit_row = [](std::string_view) {
    return Unavailable("killed before the commit");
  };
  c->SetTestHooks(crash);
  ASSERT_TRUE(c->ClaimSlot(slot).ok());  // generation 2
  absl::Status s =
      c->CommitSlot(slot, TilesAndMeta({{kX, "v2"}, {kY, "new tile"}}, {{"offset", "200"}}));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_EQ(RawRow(EncodeTileKey(kX)).size(), 2u);  // v1 and the uncommitted v2
  EXPECT_EQ(RawRow(EncodeTileKey(kY)).size(), 1u);

  std::unique_ptr<BigtableTileStore> reader = OpenHere();
  EXPECT_EQ(ScanAll(*reader, 1, "user", Resolution::kBase), (Tiles{{300'000, "v1"}}));
  EXPECT_TRUE(ScanAll(*reader, 1, "user", Resolution::kHour).empty());
  EXPECT_EQ(reader->GetMeta("offset").value_or(std::nullopt), "100");

  // The next owner starts from the previous commit; the crashed flush's cells never count.
  std::unique_ptr<BigtableTileStore> next = OpenHere();
  absl::StatusOr<SlotClaim> claim = next->ClaimSlot(slot);
  ASSERT_TRUE(claim.ok());
  EXPECT_EQ(claim->generation, 3u);
  EXPECT_EQ(claim->meta, (std::vector<std::pair<std::string, std::string>>{{"offset", "100"}}));
  std::vector<std::optional<std::string>> values;
  ASSERT_TRUE(next->MultiGetSlot(slot, {kX, kY}, &values).ok());
  EXPECT_EQ(values, (std::vector<std::optional<std::string>>{"v1", std::nullopt}));
  ASSERT_TRUE(
      next->CommitSlot(slot, TilesAndMeta({{kX, "v3"}, {kY, "y3"}}, {{"offset", "300"}})).ok());
  EXPECT_EQ(ScanAll(*reader, 1, "user", Resolution::kBase), (Tiles{{300'000, "v3"}}));
  EXPECT_EQ(ScanAll(*reader, 1, "user", Resolution::kHour), (Tiles{{0, "y3"}}));
  // The garbage of generation 2 is gone: X holds v1 (replaced) and v3, Y only y3.
  EXPECT_EQ(RawRow(EncodeTileKey(kX)).size(), 2u);
  EXPECT_EQ(RawRow(EncodeTileKey(kY)).size(), 1u);
}

// The newest valid cell, the one before it (kept for snapshots) and the one being written.
TEST_F(BigtableStoreTest, ATileHoldsAtMostTheLastThreeVersionsOfASlot) {
  std::unique_ptr<BigtableTileStore> store = NewStoreHere();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->ClaimSlot("s1").ok());
  for (int i = 1; i <= 5; ++i) {
    // With and without a MultiGetSlot before (the flush's read-merge-write, or a blind write).
    if (i % 2 == 0) {
      EXPECT_EQ(GetSlotOne(*store, "s1", kX), fmt::format("v{}", i - 1));
    }
    ASSERT_TRUE(store->CommitSlot("s1", TilesAndMeta({{kX, fmt::format("v{}", i)}})).ok());
    EXPECT_EQ(RawRow(EncodeTileKey(kX)).size(), std::min<size_t>(i, 3)) << i;
  }
  // A second store object (no memory of the rows) reads them before deleting.
  std::unique_ptr<BigtableTileStore> next = OpenHere();
  ASSERT_TRUE(next->ClaimSlot("s1").ok());
  ASSERT_TRUE(next->CommitSlot("s1", TilesAndMeta({{kX, "w"}})).ok());
  EXPECT_EQ(RawRow(EncodeTileKey(kX)).size(), 3u);
  EXPECT_EQ(GetSlotOne(*next, "s1", kX), "w");
  // Without snapshot copies: the newest valid cell and the new one.
  options_.superseded_cells_kept = 0;
  std::unique_ptr<BigtableTileStore> lean = OpenHere();
  ASSERT_TRUE(lean->ClaimSlot("s1").ok());
  ASSERT_TRUE(lean->CommitSlot("s1", TilesAndMeta({{kX, "lean"}})).ok());
  EXPECT_EQ(RawRow(EncodeTileKey(kX)).size(), 2u);
  EXPECT_EQ(GetSlotOne(*lean, "s1", kX), "lean");
}

TEST_F(BigtableStoreTest, SlotsShareTilesAndMetaWithTheDefaultSlotFirst) {
  std::unique_ptr<BigtableTileStore> store = NewStoreHere();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(
      store->Write(TilesAndMeta({{kX, "default"}}, {{"catalog", "C"}, {"dup", "d0"}})).ok());
  for (const std::string slot : {"b/1", "a/2", "b"}) {  // "b" is a prefix of "b/1"
    ASSERT_TRUE(store->ClaimSlot(slot).ok());
    ASSERT_TRUE(store
                    ->CommitSlot(slot, TilesAndMeta({{kX, "from " + slot}},
                                                    {{"pos/" + slot, slot}, {"dup", slot}}))
                    .ok());
  }
  std::unique_ptr<BigtableTileStore> reader = OpenHere();
  // One callback per slot holding the tile, slots in name order.
  EXPECT_EQ(ScanAll(*reader, 1, "user", Resolution::kBase), (Tiles{{300'000, "default"},
                                                                   {300'000, "from a/2"},
                                                                   {300'000, "from b"},
                                                                   {300'000, "from b/1"}}));
  EXPECT_EQ(GetOne(*reader, kX), "default");  // MultiGet is the default slot's
  EXPECT_EQ(GetSlotOne(*reader, "b", kX), "from b");
  EXPECT_EQ(GetSlotOne(*reader, "b/1", kX), "from b/1");
  EXPECT_EQ(GetSlotOne(*reader, "c", kX), std::nullopt);
  EXPECT_EQ(reader->GetMeta("dup").value_or(std::nullopt), "d0");
  std::vector<std::pair<std::string, std::string>> meta;
  ASSERT_TRUE(
      reader->ScanMeta("", [&](std::string_view k, std::string_view v) { meta.emplace_back(k, v); })
          .ok());
  EXPECT_EQ(meta, (std::vector<std::pair<std::string, std::string>>{{"catalog", "C"},
                                                                    {"dup", "d0"},
                                                                    {"pos/a/2", "a/2"},
                                                                    {"pos/b", "b"},
                                                                    {"pos/b/1", "b/1"}}));
}

TEST_F(BigtableStoreTest, AnotherStoresCommitIsSeenAtOnceDespiteTheCache) {
  std::unique_ptr<BigtableTileStore> writer = NewStoreHere();
  ASSERT_NE(writer, nullptr);
  BigtableOptions long_cache = options_;
  long_cache.commit_state_cache_ms = 3'600'000;
  std::unique_ptr<BigtableTileStore> reader = OpenOrDie(uri_, long_cache);
  EXPECT_TRUE(ScanAll(*reader, 1, "user", Resolution::kBase).empty());  // caches an empty state
  ASSERT_TRUE(writer->ClaimSlot("p").ok());
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(writer->CommitSlot("p", TilesAndMeta({{kX, fmt::format("v{}", i)}})).ok());
    EXPECT_EQ(ScanAll(*reader, 1, "user", Resolution::kBase),
              (Tiles{{300'000, fmt::format("v{}", i)}}));
    EXPECT_EQ(GetSlotOne(*reader, "p", kX), fmt::format("v{}", i));
  }
}

TEST_F(BigtableStoreTest, SnapshotsIgnoreLaterCommitsOfEverySlot) {
  std::unique_ptr<BigtableTileStore> store = NewStoreHere();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->ClaimSlot("p").ok());
  ASSERT_TRUE(store->CommitSlot("p", TilesAndMeta({{kX, "p1"}})).ok());
  std::shared_ptr<const StoreSnapshot> snap = store->GetSnapshot();
  ASSERT_TRUE(store->CommitSlot("p", TilesAndMeta({{kX, "p2"}})).ok());
  ASSERT_TRUE(store->ClaimSlot("q").ok());
  ASSERT_TRUE(store->CommitSlot("q", TilesAndMeta({{kX, "q1"}})).ok());
  EXPECT_EQ(ScanAll(*store, 1, "user", Resolution::kBase, snap.get()), (Tiles{{300'000, "p1"}}));
  EXPECT_EQ(ScanAll(*store, 1, "user", Resolution::kBase),
            (Tiles{{300'000, "p2"}, {300'000, "q1"}}));
  std::unique_ptr<BigtableTileStore> other = OpenHere();
  absl::Status s = other->ScanAt(snap.get(), 1, "user", Resolution::kBase, 0, 1'000'000,
                                 [](int64_t, std::string_view) {});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

TEST_F(BigtableStoreTest, LargeFlushesAreSplitIntoParallelRequests) {
  MetricsRegistry metrics;
  options_.metrics = &metrics;
  options_.max_rows_per_request = 1000;
  options_.max_parallel_requests = 3;
  options_.max_keys_per_read = 700;
  std::unique_ptr<BigtableTileStore> store = NewStoreHere();
  ASSERT_NE(store, nullptr);
  constexpr int kTiles = 5000;
  WriteBatch batch;
  std::vector<TileKey> keys;
  for (int i = 0; i < kTiles; ++i) {
    keys.push_back(TileKey{2, fmt::format("k{}", i % 50), Resolution::kBase, (i / 50) * 300'000});
    batch.tiles.emplace_back(keys.back(), fmt::format("value {}", i));
  }
  batch.meta = {{"offset", "5000"}};
  ASSERT_TRUE(store->ClaimSlot("big").ok());
  ASSERT_TRUE(store->CommitSlot("big", batch).ok());
  std::unique_ptr<BigtableTileStore> reader = OpenHere();
  std::vector<std::optional<std::string>> values;
  ASSERT_TRUE(reader->MultiGetSlot("big", keys, &values).ok());
  for (int i = 0; i < kTiles; ++i) ASSERT_EQ(values[i], fmt::format("value {}", i)) << i;
  EXPECT_EQ(ScanAll(*reader, 2, "k7", Resolution::kBase).size(), 100u);
  const std::string text = metrics.RenderPrometheus();
  EXPECT_NE(text.find("tessera_bigtable_requests_total{method=\"MutateRows\""), std::string::npos)
      << text;
}

// ---- Outages ---------------------------------------------------------------------------------

TEST_F(BigtableStoreTest, AnOutageFailsWithUnavailableAfterBoundedRetries) {
  absl::StatusOr<std::unique_ptr<BigtableEmulator>> own = BigtableEmulator::Start();
  ASSERT_TRUE(own.ok()) << own.status();
  BigtableOptions o = EmulatorOptions(**own);
  o.retry.max_attempts = 5;
  o.retry.initial_backoff_ms = 20;
  o.retry.max_backoff_ms = 100;
  MetricsRegistry metrics;
  o.metrics = &metrics;
  const std::string uri = NewTableUri();
  ASSERT_TRUE(CreateBigtableTable(uri, o, 0).ok());
  std::unique_ptr<BigtableTileStore> store = OpenOrDie(uri, o);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Write(TilesAndMeta({{kX, "before"}})).ok());

  (*own)->Kill();
  const auto t0 = std::chrono::steady_clock::now();
  absl::Status w = store->Write(TilesAndMeta({{kX, "during"}}));
  absl::Status r =
      store->Scan(1, "user", Resolution::kBase, 0, 1'000'000, [](int64_t, std::string_view) {});
  absl::StatusOr<std::optional<std::string>> m = store->GetMeta("x");
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(w.code(), absl::StatusCode::kUnavailable) << w;
  EXPECT_EQ(r.code(), absl::StatusCode::kUnavailable) << r;
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnavailable) << m.status();
  EXPECT_NE(StatusMessage(w).find("5 attempts"), std::string::npos) << w;
  EXPECT_LT(elapsed, 10s);
  EXPECT_NE(metrics.RenderPrometheus().find("tessera_bigtable_retries_total"), std::string::npos);

  // The emulator comes back (empty: it keeps nothing): the same store object reconnects. (On the
  // same port, the first reconnect can take seconds: its SYN may meet the killed server's
  // TIME_WAIT socket and be retransmitted.)
  absl::StatusOr<std::unique_ptr<BigtableEmulator>> back = BigtableEmulator::Start((*own)->port());
  ASSERT_TRUE(back.ok()) << back.status();
  absl::StatusOr<BigtableTableSetup> recreated = CreateBigtableTable(uri, o, 0);
  ASSERT_TRUE(recreated.ok()) << recreated.status();
  absl::Status after = absl::UnavailableError("not tried");
  for (int i = 0; i < 150 && !after.ok(); ++i) {
    after = store->Write(TilesAndMeta({{kX, "after"}}));
    if (!after.ok()) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(after.ok()) << after;
  EXPECT_EQ(ScanAll(*store, 1, "user", Resolution::kBase), (Tiles{{300'000, "after"}}));
}

// ---- SIGKILL of a flushing owner -------------------------------------------------------------

// A child process (this binary, re-executed) owns a slot and flushes in a loop; every flush writes
// the flush number into three tiles (base, hour, a new tile per flush) and the offset. The parent
// SIGKILLs it mid-stream; the next owner must see the offset and the tiles of one and the same
// flush, never a mix, never less than the last acknowledged one.

[[noreturn]] void RunFlushChild(const std::string& spec) {
  std::istringstream in(spec);
  int fd = -1;
  std::string endpoint, uri;
  in >> fd >> endpoint >> uri;
  BigtableOptions o;
  o.endpoint = endpoint;
  absl::StatusOr<std::unique_ptr<BigtableTileStore>> store = OpenBigtableStore(uri, o);
  if (!store.ok() || !(*store)->ClaimSlot("crash").ok()) std::_Exit(2);
  for (int i = 1;; ++i) {
    const std::string v = std::to_string(i);
    WriteBatch b =
        TilesAndMeta({{kX, v},
                      {kY, v},
                      {TileKey{1, "user", Resolution::kBase, int64_t{i} * 300'000 + 600'000}, v}},
                     {{"offset", v}});
    if (!(*store)->CommitSlot("crash", b).ok()) std::_Exit(3);
    const std::string ack = v + "\n";
    if (::write(fd, ack.data(), ack.size()) != static_cast<ssize_t>(ack.size())) std::_Exit(4);
  }
}

TEST_F(BigtableStoreTest, SigkilledOwnerLeavesExactlyOneCommittedFlush) {
  if (const char* spec = std::getenv(kCrashChildEnv); spec != nullptr) RunFlushChild(spec);
  std::unique_ptr<BigtableTileStore> store = NewStoreHere();
  ASSERT_NE(store, nullptr);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::string env_entry =
      fmt::format("{}={} {} {}", kCrashChildEnv, fds[1], emulator_->endpoint(), uri_);
  std::string filter =
      "--gtest_filter=BigtableStoreTest.SigkilledOwnerLeavesExactlyOneCommittedFlush";
  std::string exe = "/proc/self/exe";
  std::vector<char*> argv = {exe.data(), filter.data(), nullptr};
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
  envp.push_back(env_entry.data());
  envp.push_back(nullptr);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::close(fds[0]);
    ::execve(exe.c_str(), argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  const int kill_after = 5 + static_cast<int>(std::random_device{}() % 20);
  int acked = 0;
  std::string buf;
  char chunk[256];
  bool killed = false;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (true) {
    const ssize_t n = ::read(fds[0], chunk, sizeof(chunk));
    if (n <= 0) break;
    buf.append(chunk, static_cast<size_t>(n));
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      acked = std::stoi(buf.substr(0, nl));
      buf.erase(0, nl + 1);
    }
    if (!killed && (acked >= kill_after || std::chrono::steady_clock::now() > deadline)) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
  }
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "child status " << status;
  ASSERT_GE(acked, kill_after);

  absl::StatusOr<SlotClaim> claim = store->ClaimSlot("crash");
  ASSERT_TRUE(claim.ok()) << claim.status();
  ASSERT_EQ(claim->meta.size(), 1u);
  const int committed = std::stoi(claim->meta[0].second);
  EXPECT_GE(committed, acked);      // everything acknowledged is there
  EXPECT_LE(committed, acked + 1);  // at most the flush in flight at the kill
  const std::string v = std::to_string(committed);
  std::vector<std::optional<std::string>> values;
  ASSERT_TRUE(store->MultiGetSlot("crash", {kX, kY}, &values).ok());
  EXPECT_EQ(values, (std::vector<std::optional<std::string>>{v, v}));
  std::unique_ptr<BigtableTileStore> reader = OpenHere();
  Tiles base = ScanAll(*reader, 1, "user", Resolution::kBase);
  ASSERT_EQ(base.size(), static_cast<size_t>(committed) + 1);  // kX + one tile per flush
  EXPECT_EQ(base[0], (std::pair<int64_t, std::string>(300'000, v)));
  for (int i = 1; i <= committed; ++i) EXPECT_EQ(base[i].second, std::to_string(i));
  EXPECT_EQ(ScanAll(*reader, 1, "user", Resolution::kHour), (Tiles{{0, v}}));
}

// ---- The client against a fake Bigtable service ----------------------------------------------

// Scripted failures: MutateRows fails each row key's first `entry_failures[key]` attempts with
// `entry_code`; ReadRows breaks its stream after `rows_before_break` rows once; CheckAndMutateRow
// fails its first attempt with UNAVAILABLE and then answers "no match".
class FakeBigtable final : public pb::Bigtable::Service {
 public:
  grpc::Status MutateRows(grpc::ServerContext*, const pb::MutateRowsRequest* req,
                          grpc::ServerWriter<pb::MutateRowsResponse>* writer) override {
    MutexLock lock(&mu);
    request_sizes.push_back(req->entries_size());
    if (stream_failures > 0) {
      --stream_failures;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream down");
    }
    pb::MutateRowsResponse resp;
    for (int i = 0; i < req->entries_size(); ++i) {
      const std::string& key = req->entries(i).row_key();
      pb::MutateRowsResponse::Entry* e = resp.add_entries();
      e->set_index(i);
      if (entry_failures[key] > 0) {
        --entry_failures[key];
        e->mutable_status()->set_code(static_cast<int>(entry_code));
        e->mutable_status()->set_message("entry failed");
      } else {
        ++applied[key];
      }
    }
    writer->Write(resp);
    return grpc::Status::OK;
  }

  grpc::Status ReadRows(grpc::ServerContext*, const pb::ReadRowsRequest* req,
                        grpc::ServerWriter<pb::ReadRowsResponse>* writer) override {
    std::vector<std::string> keys;
    {
      MutexLock lock(&mu);
      read_requests.push_back(*req);
      for (const std::string& k : rows) {
        bool in = false;
        for (const pb::RowRange& r : req->rows().row_ranges()) {
          const bool after_start = r.start_key_case() == pb::RowRange::kStartKeyOpen
                                       ? k > r.start_key_open()
                                       : k >= r.start_key_closed();
          in = in || after_start;
        }
        if (in) keys.push_back(k);
      }
    }
    int sent = 0;
    for (const std::string& k : keys) {
      {
        MutexLock lock(&mu);
        if (break_after >= 0 && sent == break_after) {
          break_after = -1;
          return grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream broke");
        }
      }
      // Each row in two chunks, its one cell's value split over both.
      pb::ReadRowsResponse resp;
      pb::ReadRowsResponse::CellChunk* c1 = resp.add_chunks();
      c1->set_row_key(k);
      c1->mutable_family_name()->set_value("b");
      c1->mutable_qualifier()->set_value("q");
      c1->set_timestamp_micros(1000);
      c1->set_value("val-");
      c1->set_value_size(static_cast<int32_t>(4 + k.size()));
      pb::ReadRowsResponse::CellChunk* c2 = resp.add_chunks();
      c2->set_value(k);
      c2->set_commit_row(true);
      writer->Write(resp);
      ++sent;
    }
    return grpc::Status::OK;
  }

  grpc::Status CheckAndMutateRow(grpc::ServerContext*, const pb::CheckAndMutateRowRequest*,
                                 pb::CheckAndMutateRowResponse* resp) override {
    MutexLock lock(&mu);
    if (check_failures > 0) {
      --check_failures;
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "try again");
    }
    resp->set_predicate_matched(false);
    return grpc::Status::OK;
  }

  Mutex mu;
  std::map<std::string, int> entry_failures ABSL_GUARDED_BY(mu);
  grpc::StatusCode entry_code ABSL_GUARDED_BY(mu) = grpc::StatusCode::UNAVAILABLE;
  int stream_failures ABSL_GUARDED_BY(mu) = 0;
  std::map<std::string, int> applied ABSL_GUARDED_BY(mu);
  std::vector<int> request_sizes ABSL_GUARDED_BY(mu);
  std::vector<std::string> rows ABSL_GUARDED_BY(mu);
  int break_after ABSL_GUARDED_BY(mu) = -1;
  std::vector<pb::ReadRowsRequest> read_requests ABSL_GUARDED_BY(mu);
  int check_failures ABSL_GUARDED_BY(mu) = 1;
};

class BigtableClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&fake_);
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    options_.endpoint = fmt::format("http://127.0.0.1:{}", port_);
    options_.retry.initial_backoff_ms = 1;
    options_.retry.max_backoff_ms = 5;
    options_.retry.max_attempts = 4;
    absl::StatusOr<std::unique_ptr<BigtableClient>> c =
        BigtableClient::Create(BigtableUri{"p", "i", "t"}, options_);
    ASSERT_TRUE(c.ok()) << c.status();
    client_ = std::move(*c);
  }
  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now() + 1s);
  }

  static std::vector<pb::MutateRowsRequest::Entry> Entries(int n) {
    std::vector<pb::MutateRowsRequest::Entry> out(n);
    for (int i = 0; i < n; ++i) {
      out[i].set_row_key(fmt::format("row{}", i));
      pb::Mutation::SetCell* c = out[i].add_mutations()->mutable_set_cell();
      c->set_family_name("b");
      c->set_value("v");
    }
    return out;
  }

  FakeBigtable fake_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  BigtableOptions options_;
  std::unique_ptr<BigtableClient> client_;
};

TEST_F(BigtableClientTest, MutateRowsResendsOnlyTheFailedRetryableEntries) {
  {
    MutexLock lock(&fake_.mu);
    fake_.entry_failures = {{"row1", 2}, {"row3", 1}};
  }
  ASSERT_TRUE(client_->MutateRows(Entries(5)).ok());
  MutexLock lock(&fake_.mu);
  EXPECT_EQ(fake_.request_sizes, (std::vector<int>{5, 2, 1}));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(fake_.applied[fmt::format("row{}", i)], 1) << i;
}

TEST_F(BigtableClientTest, MutateRowsFailsAtOnceOnANonRetryableEntry) {
  {
    MutexLock lock(&fake_.mu);
    fake_.entry_failures = {{"row2", 1}};
    fake_.entry_code = grpc::StatusCode::INVALID_ARGUMENT;
  }
  absl::Status s = client_->MutateRows(Entries(4));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_NE(StatusMessage(s).find("row row2"), std::string::npos) << s;
  MutexLock lock(&fake_.mu);
  EXPECT_EQ(fake_.request_sizes, (std::vector<int>{4}));
}

TEST_F(BigtableClientTest, MutateRowsGivesUpAfterMaxAttempts) {
  {
    MutexLock lock(&fake_.mu);
    fake_.entry_failures = {{"row0", 100}};
    fake_.stream_failures = 1;
  }
  absl::Status s = client_->MutateRows(Entries(3));
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  EXPECT_NE(StatusMessage(s).find("4 attempts"), std::string::npos) << s;
  MutexLock lock(&fake_.mu);
  EXPECT_EQ(fake_.request_sizes, (std::vector<int>{3, 3, 1, 1}));  // the stream failure: all again
}

TEST_F(BigtableClientTest, ReadRowsResumesAfterTheLastRowAndJoinsSplitCells) {
  {
    MutexLock lock(&fake_.mu);
    fake_.rows = {"a", "b", "c", "d", "e"};
    fake_.break_after = 3;
  }
  pb::RowSet rows;
  rows.add_row_ranges()->set_start_key_closed("");
  std::vector<std::string> got;
  ASSERT_TRUE(client_
                  ->ReadRows(rows, nullptr,
                             [&](BigtableRow&& r) {
                               EXPECT_EQ(r.cells.size(), 1u);
                               got.push_back(r.key + "=" + r.cells[0].value);
                               return absl::OkStatus();
                             })
                  .ok());
  EXPECT_EQ(got, (std::vector<std::string>{"a=val-a", "b=val-b", "c=val-c", "d=val-d", "e=val-e"}));
  MutexLock lock(&fake_.mu);
  ASSERT_EQ(fake_.read_requests.size(), 2u);
  EXPECT_EQ(fake_.read_requests[1].rows().row_ranges(0).start_key_open(), "c");
}

TEST_F(BigtableClientTest, ACheckAndMutateRetriedAfterAnUnknownOutcomeSaysSo) {
  pb::RowFilter f;
  f.set_pass_all_filter(true);
  absl::StatusOr<BigtableClient::CheckAndMutateResult> r =
      client_->CheckAndMutateRow("s", f, {pb::Mutation()});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->predicate_matched);
  EXPECT_TRUE(r->retried_after_unknown_outcome);
  r = client_->CheckAndMutateRow("s", f, {pb::Mutation()});
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(r->retried_after_unknown_outcome);
}

}  // namespace
}  // namespace tessera::store
