#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "host/core/config.hpp"
#include "host/io/npy.hpp"

namespace sp {
namespace {

std::string write_temp(const std::string& name, const std::string& bytes) {
  const std::string path = ::testing::TempDir() + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

TEST(Npy, RoundTripsFloat32AndFloat64) {
  const std::vector<float> f{1.5f, -2.0f, 3.25f, 0.0f, 1e-30f, 7.0f};
  const npy::Array a = npy::load(write_temp("f.npy", npy::encode(f, {3, 2})), "--data");
  EXPECT_EQ(a.shape, (std::vector<size_t>{3, 2}));
  EXPECT_EQ(a.values, std::vector<double>(f.begin(), f.end()));
  const std::vector<double> d{0.1, 0.2};
  const npy::Array b = npy::load(write_temp("d.npy", npy::encode(d, {2})), "--init-b");
  EXPECT_EQ(b.shape, std::vector<size_t>{2});
  EXPECT_EQ(b.values, d);
}

TEST(Npy, HeaderIsAlignedTo64Bytes) {
  const std::string bytes = npy::encode(std::vector<float>{1.0f}, {1});
  EXPECT_EQ((bytes.size() - 4) % 64, 0u);
  EXPECT_NE(bytes.find("'shape': (1,)"), std::string::npos);
}

TEST(Npy, FortranOrderIsTransposed) {
  std::string bytes = npy::encode(std::vector<double>{1, 2, 3, 4, 5, 6}, {2, 3});
  bytes.replace(bytes.find("False"), 5, "True ");
  const npy::Array a = npy::load(write_temp("fortran.npy", bytes), "--data");
  EXPECT_EQ(a.values, (std::vector<double>{1, 3, 5, 2, 4, 6}));
}

TEST(Npy, MalformedFilesNameTheOption) {
  const std::string good = npy::encode(std::vector<float>{1, 2, 3, 4}, {2, 2});
  std::string big_endian = good;
  big_endian.replace(big_endian.find("<f4"), 3, ">f4");
  std::string int_typed = good;
  int_typed.replace(int_typed.find("<f4"), 3, "<i4");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"garbage.npy", "this is not numpy"},
      {"truncated.npy", good.substr(0, good.size() - 3)},
      {"big_endian.npy", big_endian},
      {"int.npy", int_typed},
  };
  for (const auto& [name, bytes] : cases) {
    try {
      npy::load(write_temp(name, bytes), "--data");
      ADD_FAILURE() << name << " was accepted";
    } catch (const UsageError& e) {
      EXPECT_EQ(std::string(e.what()).rfind("--data: ", 0), 0u) << e.what();
    }
  }
  EXPECT_THROW(npy::load("/nonexistent/x.npy", "--init-W"), UsageError);
}

}  // namespace
}  // namespace sp
