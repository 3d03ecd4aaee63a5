// AlgorithmCache: choices survive to a new instance (a later run; written when the first is
// destroyed or flushed), runs merge their entries, a corrupt file is ignored and rewritten, and
// the cache can be switched off.
#include <gtest/gtest.h>

#include <fstream>

#include "ops/algorithm_cache.h"
#include "test_util.h"

namespace tb {
namespace {

using testing::TempDir;

TEST(AlgorithmCache, AChoiceReachesTheNextRun) {
  TempDir dir;
  const std::string path = dir.str() + "/sub/conv-algorithms.json";  // folder made on write
  {
    AlgorithmCache first(path);
    EXPECT_FALSE(first.find("gpu|bf16|fprop|n512"));
    first.store("gpu|bf16|fprop|n512", {{"algo", 1}, {"math", 2}});
    EXPECT_EQ(first.stores(), 1);
  }
  AlgorithmCache second(path);
  const auto hit = second.find("gpu|bf16|fprop|n512");
  ASSERT_TRUE(hit);
  EXPECT_EQ((*hit)["algo"], 1);
  EXPECT_EQ((*hit)["math"], 2);
  EXPECT_EQ(second.hits(), 1);
}

TEST(AlgorithmCache, RunsMergeTheirEntries) {
  TempDir dir;
  const std::string path = dir.str() + "/c.json";
  AlgorithmCache a(path), b(path);
  EXPECT_FALSE(a.find("x"));  // both loaded the empty cache
  EXPECT_FALSE(b.find("y"));
  a.store("x", 1);
  b.store("y", 2);
  a.flush();
  b.flush();  // must keep a's entry, written after b loaded
  AlgorithmCache c(path);
  EXPECT_TRUE(c.find("x"));
  EXPECT_TRUE(c.find("y"));
}

TEST(AlgorithmCache, ACorruptFileIsIgnoredAndRewritten) {
  TempDir dir;
  const std::string path = dir.str() + "/c.json";
  std::ofstream(path) << "{ not json";
  AlgorithmCache a(path);
  EXPECT_FALSE(a.find("x"));
  a.store("x", 3);
  a.flush();
  AlgorithmCache b(path);
  ASSERT_TRUE(b.find("x"));
  EXPECT_EQ(*b.find("x"), 3);
}

TEST(AlgorithmCache, OffKeepsChoicesInMemoryOnly) {
  {
    const testing::ScopedEnv off("TB_ALGO_CACHE", "off");
    EXPECT_EQ(AlgorithmCache::default_path(), "");
  }
  {
    const testing::ScopedEnv moved("TB_ALGO_CACHE", "/some/where.json");
    EXPECT_EQ(AlgorithmCache::default_path(), "/some/where.json");
  }
  {
    const testing::ScopedEnv unset("TB_ALGO_CACHE", "");  // empty: not set
    const testing::ScopedEnv xdg("XDG_CACHE_HOME", "/xdg");
    EXPECT_EQ(AlgorithmCache::default_path(), "/xdg/trainbench/conv-algorithms.json");
  }

  AlgorithmCache off("");
  off.store("x", 1);
  EXPECT_TRUE(off.find("x"));  // this run still remembers it
  EXPECT_EQ(off.path(), "");
}

}  // namespace
}  // namespace tb
