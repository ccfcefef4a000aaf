#include "proxy/compress/accept_encoding.h"

#include <gtest/gtest.h>

#include <vector>

namespace corral::proxy::compress {
namespace {

const std::vector<Coding> kBrGzip{Coding::Br, Coding::Gzip};
const std::vector<Coding> kGzipBr{Coding::Gzip, Coding::Br};
const std::vector<Coding> kGzip{Coding::Gzip};

Coding pick(std::string_view field, const std::vector<Coding>& offered = kBrGzip) {
  AcceptEncoding ae;
  ae.add(field);
  return choose_coding(ae, offered);
}

TEST(QValue, Grammar) {
  EXPECT_EQ(parse_qvalue("1"), 1000);
  EXPECT_EQ(parse_qvalue("1."), 1000);
  EXPECT_EQ(parse_qvalue("1.000"), 1000);
  EXPECT_EQ(parse_qvalue("0"), 0);
  EXPECT_EQ(parse_qvalue("0.5"), 500);
  EXPECT_EQ(parse_qvalue("0.125"), 125);
  EXPECT_EQ(parse_qvalue("0.001"), 1);
  EXPECT_EQ(parse_qvalue("1.5"), -1);
  EXPECT_EQ(parse_qvalue("0.1234"), -1);
  EXPECT_EQ(parse_qvalue("2"), -1);
  EXPECT_EQ(parse_qvalue(".5"), -1);
  EXPECT_EQ(parse_qvalue(""), -1);
  EXPECT_EQ(parse_qvalue("0.x"), -1);
}

TEST(AcceptEncoding, NoFieldMeansIdentity) {
  AcceptEncoding ae;
  EXPECT_EQ(choose_coding(ae, kBrGzip), Coding::Identity);
  EXPECT_EQ(pick(""), Coding::Identity);
  EXPECT_EQ(pick(" , ,"), Coding::Identity);
}

TEST(AcceptEncoding, RouteOrderBreaksTies) {
  EXPECT_EQ(pick("gzip, deflate, br"), Coding::Br);
  EXPECT_EQ(pick("gzip, deflate, br", kGzipBr), Coding::Gzip);
  EXPECT_EQ(pick("gzip, deflate, br, zstd"), Coding::Br);  // what browsers send
  EXPECT_EQ(pick("gzip"), Coding::Gzip);
  EXPECT_EQ(pick("br"), Coding::Br);
  EXPECT_EQ(pick("br", kGzip), Coding::Identity);  // the route offers gzip only
  EXPECT_EQ(pick("deflate, compress"), Coding::Identity);
}

TEST(AcceptEncoding, HigherQWins) {
  EXPECT_EQ(pick("br;q=0.5, gzip"), Coding::Gzip);
  EXPECT_EQ(pick("br;q=0.5, gzip;q=0.4"), Coding::Br);
  EXPECT_EQ(pick("gzip;q=1.0, br;q=0.999"), Coding::Gzip);
  EXPECT_EQ(pick("GZIP ; Q=0.9 , BR ; q = 0.8"), Coding::Gzip);  // any case, spaces around ';'
}

TEST(AcceptEncoding, ZeroExcludes) {
  EXPECT_EQ(pick("br;q=0, gzip"), Coding::Gzip);
  EXPECT_EQ(pick("br;q=0, gzip;q=0"), Coding::Identity);
  EXPECT_EQ(pick("gzip;q=0.000"), Coding::Identity);
  EXPECT_EQ(pick("*;q=0, identity"), Coding::Identity);
}

TEST(AcceptEncoding, StarCoversUnnamedCodings) {
  EXPECT_EQ(pick("*"), Coding::Br);
  EXPECT_EQ(pick("*", kGzip), Coding::Gzip);
  EXPECT_EQ(pick("br;q=0, *"), Coding::Gzip);
  EXPECT_EQ(pick("gzip;q=0.2, *;q=0.5"), Coding::Br);
  EXPECT_EQ(pick("*;q=0"), Coding::Identity);
}

TEST(AcceptEncoding, Identity) {
  EXPECT_EQ(pick("identity"), Coding::Identity);
  // identity preferred outright over the best coding.
  EXPECT_EQ(pick("gzip;q=0.5, identity"), Coding::Identity);
  EXPECT_EQ(pick("gzip, identity;q=0.5"), Coding::Gzip);
  EXPECT_EQ(pick("gzip, identity"), Coding::Gzip);  // a tie: compress
  // identity;q=0 alone does not ask for compression of an unoffered coding.
  EXPECT_EQ(pick("identity;q=0, deflate"), Coding::Identity);
}

TEST(AcceptEncoding, AliasesAndParameters) {
  EXPECT_EQ(pick("x-gzip", kGzip), Coding::Gzip);
  EXPECT_EQ(pick("gzip;level=9", kGzip), Coding::Gzip);  // parameters other than q mean nothing
  EXPECT_EQ(pick("br;q=abc, gzip;q=0.1"), Coding::Gzip);  // a malformed q is a no
  EXPECT_EQ(pick("brotli, gzipx"), Coding::Identity);  // near misses are other codings
}

TEST(AcceptEncoding, SeveralFieldsAreOneList) {
  AcceptEncoding ae;
  ae.add("gzip;q=0.3");
  ae.add("br;q=0.6");
  EXPECT_EQ(choose_coding(ae, kGzipBr), Coding::Br);
  EXPECT_EQ(ae.q(Coding::Gzip), 300);
  EXPECT_EQ(ae.q(Coding::Identity), 1000);
  // Named twice: the higher value counts.
  AcceptEncoding twice;
  twice.add("gzip;q=0, gzip;q=0.5");
  EXPECT_EQ(twice.q(Coding::Gzip), 500);
}

}  // namespace
}  // namespace corral::proxy::compress
