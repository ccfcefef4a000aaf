// Hostile HTTP/1.x input: the rules of RFC 9110 and RFC 9112 that bind a server or a gateway,
// one case each (tests/hostile/README.md lists them with their sections). Every case runs
// against the same daemons: its exact answer, whether the connection stays open, what the
// worker received (nothing, or the sanitised request), and a fresh client served afterwards.
#include <string>
#include <vector>

#include "tests/hostile/hostile.h"

namespace corral::hostile {
namespace {

using V = std::vector<Forwarded>;
using A = std::vector<Answer>;

const std::string kBig(20 * 1024, 'a');

// ---- checks ----------------------------------------------------------------------------

/// The single forwarded request has none of these fields.
std::function<void(const V&)> lacks(std::vector<std::string> names) {
  return [names](const V& v) {
    for (auto& n : names) EXPECT_FALSE(v[0].header(n).has_value()) << n << " was forwarded:\n" << v[0].raw_head;
  };
}

/// The single forwarded request has field `name` with exactly `value`.
std::function<void(const V&)> has(std::string name, std::string value) {
  return [name, value](const V& v) {
    auto got = v[0].header(name);
    ASSERT_TRUE(got.has_value()) << name << " missing:\n" << v[0].raw_head;
    EXPECT_EQ(*got, value) << name;
  };
}

/// The single forwarded request: method, target, body.
std::function<void(const V&)> saw(std::string method, std::string target, std::string body = "") {
  return [method, target, body](const V& v) {
    EXPECT_EQ(v[0].method, method);
    EXPECT_EQ(v[0].target, target);
    EXPECT_EQ(v[0].version, "HTTP/1.1");
    EXPECT_EQ(v[0].body, body);
  };
}

std::function<void(const V&)> all_of(std::vector<std::function<void(const V&)>> checks) {
  return [checks](const V& v) {
    for (auto& c : checks) c(v);
  };
}

/// The answer has no field `name`.
std::function<void(const A&)> answer_lacks(std::string name) {
  return [name](const A& a) {
    for (auto& x : a) EXPECT_FALSE(itest::has_header(x.headers, name)) << name << " in " << x.status_line;
  };
}

std::function<void(const A&)> answer_has(std::string name, std::string value) {
  return [name, value](const A& a) { EXPECT_EQ(a.back().header(name), value) << name << " in " << a.back().status_line; };
}

Case reject(std::string name, std::string rule, std::string send, int status) {
  Case c;
  c.name = std::move(name);
  c.rule = std::move(rule);
  c.send = std::move(send);
  c.statuses = {status};
  c.after = After::Closed;
  c.forwarded = 0;
  return c;
}

Case pass(std::string name, std::string rule, std::string send, std::function<void(const V&)> check = {}) {
  Case c;
  c.name = std::move(name);
  c.rule = std::move(rule);
  c.send = std::move(send);
  c.statuses = {200};
  c.after = After::KeptOpen;
  c.forwarded = 1;
  c.check_worker = std::move(check);
  return c;
}

std::string many_fields(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += "X-F" + std::to_string(i) + ": v\r\n";
  return s;
}

// ---- RFC 9112 ------------------------------------------------------------------------------

std::vector<Case> rfc9112() {
  std::vector<Case> v;
  const std::string s2 = "RFC 9112 §2.2";
  v.push_back(pass("baseline_get", "RFC 9112 §3", req("GET", "/a?b=c"), saw("GET", "/a?b=c")));
  v.push_back(reject("bare_lf_400", s2, "GET / HTTP/1.1\nHost: h.test\n\n", 400));
  v.push_back(reject("bare_cr_in_value_400", s2, req("GET", "/", "X-A: a\rb\r\n"), 400));
  v.push_back(reject("whitespace_line_before_first_field_400", s2, "GET / HTTP/1.1\r\n Host: h.test\r\n\r\n", 400));
  v.push_back(pass("one_leading_crlf_ignored", s2, "\r\n" + req("GET", "/lead"), saw("GET", "/lead")));
  v.push_back(reject("two_leading_crlf_400", s2, "\r\n\r\n" + req("GET", "/"), 400));
  v.push_back(reject("cr_x_ends_head_400", s2, "GET / HTTP/1.1\r\nHost: h.test\r\n\rX\r\n\r\n", 400));

  const std::string s23 = "RFC 9112 §2.3";
  v.push_back(reject("version_2_0_505", s23, req("GET", "/", "", "", "HTTP/2.0"), 505));
  v.push_back(reject("version_lowercase_400", s23, req("GET", "/", "", "", "http/1.1"), 400));
  v.push_back(reject("version_junk_400", s23, req("GET", "/", "", "", "HTTP/1.x"), 400));

  const std::string s3 = "RFC 9112 §3";
  v.push_back(reject("tab_in_request_line_400", s3, "GET\t/ HTTP/1.1\r\nHost: h.test\r\n\r\n", 400));
  v.push_back(reject("double_space_request_line_400", s3, "GET  / HTTP/1.1\r\nHost: h.test\r\n\r\n", 400));
  v.push_back(reject("nul_in_request_line_400", s3, std::string("GET /\0 HTTP/1.1\r\nHost: h.test\r\n\r\n", 34), 400));
  v.push_back(reject("target_too_long_414", s3, req("GET", "/" + kBig), 414));

  const std::string s32 = "RFC 9112 §3.2";
  v.push_back(reject("missing_host_400", s32, req("GET", "/", "", "", "HTTP/1.1", ""), 400));
  v.push_back(reject("duplicate_host_400", s32, req("GET", "/", "Host: h.test\r\n"), 400));
  v.push_back(reject("invalid_host_400", s32, req("GET", "/", "", "", "HTTP/1.1", "a b"), 400));
  v.push_back(reject("invalid_char_in_target_400", s32, req("GET", "/a{b}"), 400));
  v.push_back(reject("bad_percent_in_target_400", s32, req("GET", "/%zz"), 400));

  v.push_back(reject("method_too_long_501", s3, req(std::string(33, 'M'), "/"), 501));
  v.push_back(pass("method_at_bound_forwarded", s3, req(std::string(32, 'M'), "/m32"), saw(std::string(32, 'M'), "/m32")));
  v.push_back(reject("method_invalid_char_400", s3, req("GE(T", "/"), 400));
  v.push_back(reject("asterisk_form_on_get_400", "RFC 9112 §3.2.4", req("GET", "*"), 400));
  {
    Case c = pass("options_asterisk_answered_by_proxy", "RFC 9112 §3.2.4", req("OPTIONS", "*"));
    c.forwarded = 0;
    v.push_back(c);
  }
  v.push_back(reject("authority_form_on_get_400", "RFC 9112 §3.2.3", req("GET", "h.test:80"), 400));
  v.push_back(reject("connect_not_supported_501", "RFC 9110 §9.3.6", req("CONNECT", "h.test:443", "", "", "HTTP/1.1", "h.test:443"), 501));
  v.push_back(reject("connect_bad_authority_400", "RFC 9112 §3.2.3", req("CONNECT", "/x"), 400));
  {
    auto app_other = [](std::string target) {
      return [target](const V& f) {
        EXPECT_EQ(f[0].app, "other");
        EXPECT_EQ(f[0].target, target);
        EXPECT_EQ(f[0].all("Host"), std::vector<std::string>{"other.example"});
      };
    };
    const std::string s322 = "RFC 9112 §3.2.2";
    v.push_back(pass("absolute_form_sent_as_origin_form", "RFC 9112 §3.2.1",
                     req("GET", "http://other.example/x?y=1", "", "", "HTTP/1.1", "other.example"), app_other("/x?y=1")));
    v.push_back(pass("absolute_form_wins_over_host", s322, req("GET", "http://other.example/abs"), app_other("/abs")));
    v.push_back(pass("absolute_form_empty_path_is_slash", "RFC 9112 §3.2.1",
                     req("GET", "http://other.example", "", "", "HTTP/1.1", "other.example"), app_other("/")));
    v.push_back(pass("absolute_form_query_only", "RFC 9112 §3.2.1",
                     req("GET", "HTTP://other.example?q", "", "", "HTTP/1.1", "other.example"), app_other("/?q")));
    v.push_back(reject("absolute_form_still_needs_host_400", s322, req("GET", "http://other.example/", "", "", "HTTP/1.1", ""), 400));
    v.push_back(reject("absolute_form_userinfo_400", "RFC 9110 §4.2.4", req("GET", "http://u:p@other.example/"), 400));
    v.push_back(reject("absolute_form_other_scheme_400", "RFC 9112 §3.2.2", req("GET", "ftp://other.example/"), 400));
  }
  v.push_back(reject("host_with_userinfo_400", s32, req("GET", "/", "", "", "HTTP/1.1", "u@h.test"), 400));
  v.push_back(pass("empty_host_accepted", s32, req("GET", "/eh", "", "", "HTTP/1.1", " "), saw("GET", "/eh")));

  const std::string s5 = "RFC 9112 §5";
  v.push_back(reject("space_before_colon_400", "RFC 9112 §5.1", req("GET", "/", "X-A : a\r\n"), 400));
  v.push_back(reject("obs_fold_400", "RFC 9112 §5.2", req("GET", "/", "X-A: a\r\n  folded\r\n"), 400));

  const std::string s63 = "RFC 9112 §6.3";
  v.push_back(reject("te_and_cl_400", s63,
                     req("POST", "/", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), 400));
  v.push_back(reject("te_chunked_not_last_400", s63,
                     req("POST", "/", "Transfer-Encoding: chunked, gzip\r\n", "5\r\nhello\r\n0\r\n\r\n"), 400));
  v.push_back(reject("cl_list_400", s63, req("POST", "/", "Content-Length: 5, 5\r\n", "hello"), 400));
  v.push_back(reject("cl_differing_400", s63, req("POST", "/", "Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), 400));

  v.push_back(reject("te_chunked_twice_400", s63,
                     req("POST", "/", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400));
  v.push_back(reject("te_unknown_coding_501", "RFC 9112 §6.1",
                     req("POST", "/", "Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), 501));
  v.push_back(reject("te_empty_element_400", s63,
                     req("POST", "/", "Transfer-Encoding: , chunked\r\n", "0\r\n\r\n"), 400));
  v.push_back(reject("te_in_http10_400", "RFC 9112 §6.1",
                     req("POST", "/", "Transfer-Encoding: chunked\r\n", "0\r\n\r\n", "HTTP/1.0"), 400));
  v.push_back(reject("cl_plus_sign_400", s63, req("POST", "/", "Content-Length: +5\r\n", "hello"), 400));
  v.push_back(reject("cl_negative_400", s63, req("POST", "/", "Content-Length: -1\r\n"), 400));
  v.push_back(reject("cl_overflow_400", s63, req("POST", "/", "Content-Length: 99999999999999999999\r\n"), 400));
  v.push_back(pass("cl_identical_duplicates_forwarded_once", "RFC 9110 §8.6",
                   req("POST", "/cl", "Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
                   all_of({saw("POST", "/cl", "hello"), [](const V& f) { EXPECT_EQ(f[0].all("Content-Length").size(), 1u); }})));
  {
    // §6.3: the proxy re-frames: the worker gets a Content-Length, never the client's chunks.
    v.push_back(pass("chunked_body_reframed", "RFC 9112 §7.1",
                     req("POST", "/ch", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
                     all_of({saw("POST", "/ch", "hello world"), lacks({"Transfer-Encoding"}), has("Content-Length", "11")})));
  }
  const std::string s71 = "RFC 9112 §7.1";
  v.push_back(reject("chunk_size_overflow_400", s71,
                     req("POST", "/", "Transfer-Encoding: chunked\r\n", "fffffffffffffffff1\r\nx\r\n0\r\n\r\n"), 400));
  v.push_back(reject("chunk_size_not_hex_400", s71,
                     req("POST", "/", "Transfer-Encoding: chunked\r\n", "5g\r\nhello\r\n0\r\n\r\n"), 400));
  v.push_back(reject("chunk_data_without_crlf_400", s71,
                     req("POST", "/", "Transfer-Encoding: chunked\r\n", "5\r\nhelloX0\r\n\r\n"), 400));
  v.push_back(reject("chunk_size_bws_400", s71,
                     req("POST", "/", "Transfer-Encoding: chunked\r\n", "5 \r\nhello\r\n0\r\n\r\n"), 400));
  v.push_back(pass("chunk_extension_ignored", "RFC 9112 §7.1.1",
                   req("POST", "/ext", "Transfer-Encoding: chunked\r\n",
                       "5;name=value;q=\"quoted\"\r\nhello\r\n0;last\r\n\r\n"),
                   saw("POST", "/ext", "hello")));
  v.push_back(reject("chunk_extension_too_long_400", "RFC 9112 §7.1.1",
                     req("POST", "/", "Transfer-Encoding: chunked\r\n",
                         "5;" + std::string(1100, 'e') + "\r\nhello\r\n0\r\n\r\n"), 400));
  v.push_back(pass("trailers_not_forwarded", "RFC 9112 §7.1.2",
                   req("POST", "/tr", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n"),
                   all_of({saw("POST", "/tr", "hello"), lacks({"X-Trailer"})})));
  v.push_back(reject("trailer_obs_fold_400", "RFC 9112 §7.1.2",
                     req("POST", "/", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n"), 400));
  {
    // §6.3: a body cut short by the client's close is incomplete: nothing is forwarded.
    Case c = reject("body_cut_short_not_forwarded", "RFC 9112 §6.3",
                    req("POST", "/", "Content-Length: 10\r\n", "hello"), 0);
    c.statuses = {};
    c.half_close = true;
    v.push_back(c);
  }
  {
    Case c = reject("chunked_body_cut_short_not_forwarded", "RFC 9112 §6.3",
                    req("POST", "/", "Transfer-Encoding: chunked\r\n", "5\r\nhello\r\n"), 0);
    c.statuses = {};
    c.half_close = true;
    v.push_back(c);
  }

  v.push_back(pass("te_coding_name_case_insensitive", "RFC 9112 §7",
                   req("POST", "/tc", "Transfer-Encoding: Chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"),
                   saw("POST", "/tc", "hello")));
  v.push_back(pass("chunk_size_leading_zeros", s71,
                   req("POST", "/lz", "Transfer-Encoding: chunked\r\n", "0005\r\nhello\r\n0000\r\n\r\n"),
                   saw("POST", "/lz", "hello")));
  v.push_back(pass("chunked_empty_body", s71, req("POST", "/ce", "Transfer-Encoding: chunked\r\n", "0\r\n\r\n"),
                   all_of({saw("POST", "/ce", ""), has("Content-Length", "0")})));
  v.push_back(pass("cl_leading_zeros", s63, req("POST", "/cz", "Content-Length: 005\r\n", "hello"),
                   all_of({saw("POST", "/cz", "hello"), has("Content-Length", "5")})));
  {
    // §6.3: the body ends where Content-Length says; what follows is the next request (here
    // not one: 400, and the connection closes), never part of the first.
    Case c = pass("bytes_after_body_are_the_next_request", s63,
                  req("POST", "/ab", "Content-Length: 5\r\n", "helloGARBAGE\r\n\r\n"), saw("POST", "/ab", "hello"));
    c.statuses = {200, 400};
    c.after = After::Closed;
    v.push_back(c);
  }
  v.push_back(reject("http09_request_line_400", "RFC 9112 §2.3", "GET /\r\n\r\n", 400));
  v.push_back(reject("space_in_target_400", s3, req("GET", "/a b"), 400));
  {
    const std::string s9h = "RFC 9110 §4.2.3";
    auto to_other = [](const V& f) { EXPECT_EQ(f[0].app, "other"); };
    v.push_back(pass("host_is_case_insensitive", s9h, req("GET", "/hc", "", "", "HTTP/1.1", "OTHER.Example"), to_other));
    v.push_back(pass("host_port_is_not_the_host", s9h, req("GET", "/hp", "", "", "HTTP/1.1", "other.example:8080"), to_other));
    v.push_back(pass("host_ipv6_literal", s32, req("GET", "/h6", "", "", "HTTP/1.1", "[::1]:8080"),
                     [](const V& f) { EXPECT_EQ(f[0].app, "main"); }));
    v.push_back(reject("host_ipv6_unclosed_400", s32, req("GET", "/", "", "", "HTTP/1.1", "[::1"), 400));
    v.push_back(reject("host_port_not_digits_400", s32, req("GET", "/", "", "", "HTTP/1.1", "h.test:8o"), 400));
  }
  v.push_back(pass("absolute_form_https_proto_is_the_connections", "RFC 9112 §3.2.2",
                   req("GET", "https://h.test/p"), has("X-Forwarded-Proto", "http")));

  const std::string s9 = "RFC 9112 §9.3";
  {
    Case c = pass("close_option_wins", "RFC 9112 §9.6", req("GET", "/cw", "Connection: keep-alive, close\r\n"));
    c.after = After::Closed;
    c.check_answers = answer_has("Connection", "close");
    v.push_back(c);
  }
  {
    Case c = pass("http10_closed_by_default", s9, req("GET", "/", "", "", "HTTP/1.0", ""));
    c.after = After::Closed;
    c.check_answers = answer_has("Connection", "close");
    v.push_back(c);
  }
  {
    Case c = pass("http10_keep_alive_when_asked", s9, req("GET", "/", "Connection: keep-alive\r\n", "", "HTTP/1.0", ""));
    c.check_answers = answer_has("Connection", "keep-alive");
    v.push_back(c);
  }
  {
    // A response of unknown length to an HTTP/1.0 client: no chunked coding, the close ends it.
    Case c = pass("http10_no_chunked_response", "RFC 9112 §6.1",
                  req("GET", "/big?bytes=3000&chunked=1", "Connection: keep-alive\r\n", "", "HTTP/1.0", ""));
    c.after = After::Closed;
    c.check_answers = [](const A& a) {
      answer_lacks("Transfer-Encoding")(a);
      EXPECT_EQ(a[0].body.size(), 3000u);
    };
    v.push_back(c);
  }
  {
    Case c = pass("http10_without_host_gets_one", "RFC 9112 §3.2", req("GET", "/nohost", "", "", "HTTP/1.0", ""),
                  [](const V& f) { EXPECT_TRUE(f[0].header("Host").has_value()); });
    c.after = After::Closed;
    v.push_back(c);
  }
  {
    // RFC 9110 §10.1.1: an HTTP/1.0 client's expectation is ignored: no 100, no 417.
    Case c = pass("http10_expect_ignored", "RFC 9110 §10.1.1",
                  req("POST", "/e10", "Expect: 100-continue\r\nContent-Length: 5\r\n", "hello", "HTTP/1.0", ""),
                  saw("POST", "/e10", "hello"));
    c.after = After::Closed;
    v.push_back(c);
  }
  {
    // §9.6: after "Connection: close" no further request on the connection is processed.
    Case c = pass("close_stops_pipeline", "RFC 9112 §9.6",
                  req("GET", "/first", "Connection: close\r\n") + req("GET", "/second"), saw("GET", "/first"));
    c.after = After::Closed;
    c.check_answers = answer_has("Connection", "close");
    v.push_back(c);
  }
  {
    Case c = pass("pipelined_answers_in_order", "RFC 9112 §9.3.2",
                  req("GET", "/p1") + req("POST", "/p2", "Content-Length: 2\r\n", "ab") + req("HEAD", "/p3"));
    c.statuses = {200, 200, 200};
    c.forwarded = 3;
    c.head_requests = {false, false, true};
    c.check_worker = [](const V& f) {
      EXPECT_EQ(f[0].target, "/p1");
      EXPECT_EQ(f[1].target, "/p2");
      EXPECT_EQ(f[1].body, "ab");
      EXPECT_EQ(f[2].target, "/p3");
    };
    v.push_back(c);
  }
  return v;
}

// ---- RFC 9110 ------------------------------------------------------------------------------

std::vector<Case> rfc9110() {
  std::vector<Case> v;
  const std::string s55 = "RFC 9110 §5.5";
  v.push_back(reject("nul_in_field_value_400", s55, req("GET", "/", std::string("X-A: a\0b\r\n", 10)), 400));
  v.push_back(reject("ctl_in_field_value_400", s55, req("GET", "/", "X-A: a\x01" "b\r\n"), 400));
  v.push_back(pass("hop_by_hop_fields_stripped", "RFC 9110 §7.6.1",
                   req("GET", "/hop",
                       "Connection: X-Secret, keep-alive\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"
                       "Proxy-Connection: keep-alive\r\nX-Kept: yes\r\n"),
                   all_of({lacks({"Connection", "X-Secret", "Keep-Alive", "TE", "Proxy-Connection"}),
                           has("X-Kept", "yes")})));
  const std::string s54 = "RFC 9110 §5.4";
  v.push_back(reject("field_line_too_large_431", s54, req("GET", "/", "X-Big: " + kBig + "\r\n"), 431));
  v.push_back(reject("too_many_fields_431", s54, req("GET", "/", many_fields(100)), 431));
  v.push_back(pass("many_fields_within_limit", s54, req("GET", "/many", many_fields(90)),
                   [](const V& f) { EXPECT_TRUE(f[0].header("X-F89").has_value()); }));
  {
    Case c = pass("head_answer_has_no_body", "RFC 9110 §9.3.2", req("HEAD", "/big?bytes=100"));
    c.head_requests = {true};
    c.check_answers = answer_has("Content-Length", "100");
    v.push_back(c);
  }
  v.push_back(reject("field_name_too_long_431", s54, req("GET", "/", std::string(257, 'n') + ": v\r\n"), 431));
  v.push_back(reject("invalid_char_in_field_name_400", "RFC 9110 §5.1", req("GET", "/", "X@A: v\r\n"), 400));
  v.push_back(reject("empty_field_name_400", "RFC 9110 §5.1", req("GET", "/", ": v\r\n"), 400));
  v.push_back(reject("field_line_without_colon_400", "RFC 9112 §5", req("GET", "/", "X-A v\r\n"), 400));
  v.push_back(pass("field_order_kept", "RFC 9110 §5.3", req("GET", "/order", "X-M: 1\r\nX-O: o\r\nX-M: 2\r\n"),
                   [](const V& f) { EXPECT_EQ(f[0].all("X-M"), (std::vector<std::string>{"1", "2"})); }));
  v.push_back(pass("obs_text_in_value_forwarded", "RFC 9110 §5.5", req("GET", "/ot", "X-T: caf\xc3\xa9\r\n"),
                   has("X-T", "caf\xc3\xa9")));
  {
    Case c = pass("date_added_to_answers", "RFC 9110 §6.6.1", req("GET", "/date"));
    c.check_answers = [](const A& a) { EXPECT_FALSE(a[0].header("Date").empty()) << "no Date"; };
    v.push_back(c);
  }
  {
    Case c = reject("date_on_proxy_errors", "RFC 9110 §6.6.1", req("GET", "/", "X-A : a\r\n"), 400);
    c.check_answers = [](const A& a) { EXPECT_FALSE(a[0].header("Date").empty()) << "no Date"; };
    v.push_back(c);
  }
  const std::string s761 = "RFC 9110 §7.6.1";
  {
    std::string conn = "Connection: ";
    std::string fields;
    for (int i = 0; i < 20; ++i) {
      conn += (i ? ", " : "") + std::string("X-H") + std::to_string(i);
      fields += "X-H" + std::to_string(i) + ": secret\r\n";
    }
    v.push_back(pass("connection_many_options_all_stripped", s761, req("GET", "/many-conn", conn + "\r\n" + fields),
                     [](const V& f) {
                       for (int i = 0; i < 20; ++i) EXPECT_FALSE(f[0].header("X-H" + std::to_string(i)).has_value()) << i;
                     }));
  }
  v.push_back(pass("connection_in_two_fields_stripped", s761,
                   req("GET", "/two-conn", "Connection: X-A\r\nX-A: 1\r\nX-B: 2\r\nConnection: x-b\r\n"),
                   lacks({"X-A", "X-B", "Connection"})));
  v.push_back(pass("upgrade_h2c_not_forwarded", s761,
                   req("GET", "/h2c", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n"),
                   lacks({"Upgrade", "HTTP2-Settings", "Connection"})));
  v.push_back(pass("connection_listing_end_to_end_host_kept", s761, req("GET", "/ch", "Connection: close-not, X-None\r\n"),
                   has("Host", "h.test")));
  const std::string s762 = "RFC 9110 §7.6.2";
  {
    Case c = pass("max_forwards_zero_options_answered", s762, req("OPTIONS", "/mf", "Max-Forwards: 0\r\n"));
    c.forwarded = 0;
    v.push_back(c);
  }
  {
    Case c = pass("max_forwards_zero_trace_answered", s762, req("TRACE", "/mf", "Max-Forwards: 0\r\n"));
    c.forwarded = 0;
    c.statuses = {501};
    v.push_back(c);
  }
  v.push_back(pass("max_forwards_decremented", s762, req("OPTIONS", "/mf", "Max-Forwards: 5\r\n"), has("Max-Forwards", "4")));
  v.push_back(pass("max_forwards_other_methods_untouched", s762, req("GET", "/mf", "Max-Forwards: 0\r\n"),
                   has("Max-Forwards", "0")));
  v.push_back(reject("max_forwards_invalid_400", s762, req("TRACE", "/mf", "Max-Forwards: many\r\n"), 400));
  const std::string s763 = "RFC 9110 §7.6.3";
  v.push_back(pass("via_added", s763, req("GET", "/via"),
                   [](const V& f) { EXPECT_EQ(f[0].all("Via"), std::vector<std::string>{"1.1 corral"}); }));
  v.push_back(pass("via_appended_after_clients", s763, req("GET", "/via", "Via: 1.1 edge\r\n"),
                   [](const V& f) { EXPECT_EQ(f[0].all("Via"), (std::vector<std::string>{"1.1 edge", "1.1 corral"})); }));
  {
    Case c = pass("via_names_http10", s763, req("GET", "/via", "", "", "HTTP/1.0", ""),
                  [](const V& f) { EXPECT_EQ(f[0].all("Via"), std::vector<std::string>{"1.0 corral"}); });
    c.after = After::Closed;
    v.push_back(c);
  }
  v.push_back(pass("target_not_normalised", "RFC 9110 §7.7", req("GET", "/a/./b/../c//d?x=%41&y=%2f"),
                   saw("GET", "/a/./b/../c//d?x=%41&y=%2f")));
  v.push_back(pass("method_is_case_sensitive", "RFC 9110 §9.1", req("get", "/lower"), saw("get", "/lower")));
  v.push_back(pass("extension_method_forwarded", "RFC 9110 §9.1", req("PURGE", "/ext"), saw("PURGE", "/ext")));
  v.push_back(pass("authorization_unchanged", "RFC 9110 §11.6.2",
                   req("GET", "/auth", "Authorization: Basic  dXNlcjpwYXNz\r\n"), has("Authorization", "Basic  dXNlcjpwYXNz")));
  {
    // The proxy asks for the body itself (RFC 9110 §10.1.1) and never passes Expect on.
    Case c = pass("expect_100_continue_answered_by_proxy", "RFC 9110 §10.1.1",
                  req("POST", "/ex", "Expect: 100-continue\r\nContent-Length: 5\r\n"),
                  all_of({saw("POST", "/ex", "hello"), lacks({"Expect"})}));
    c.statuses = {100, 200};
    c.then_send = "hello";
    v.push_back(c);
  }
  v.push_back(reject("body_over_max_body_size_413", "RFC 9110 §15.5.14",
                     req("POST", "/", "Content-Length: 70000\r\n", std::string(100, 'b')), 413));
  v.push_back(pass("forwarding_fields_not_trusted", "RFC 9110 §7.6 (corral: X-Forwarded-*)",
                   req("GET", "/xff", "X-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Forwarded-Host: evil\r\n"),
                   all_of({has("X-Forwarded-For", "127.0.0.1"), has("X-Forwarded-Host", "h.test"), lacks({"Forwarded"})})));
  {
    Case c = pass("interim_103_forwarded", "RFC 9110 §15.2", req("GET", "/early-hints"));
    c.statuses = {103, 200};
    c.check_answers = [](const A& a) {
      EXPECT_EQ(a[0].header("Link"), "</hint.css>; rel=preload");
      EXPECT_FALSE(itest::has_header(a[0].headers, "X-Hop")) << "hop-by-hop field of a 1xx forwarded";
      EXPECT_EQ(a[1].body, "hinted\n");
    };
    v.push_back(c);
  }
  {
    Case c = pass("no_interim_to_http10", "RFC 9110 §15.2", req("GET", "/early-hints", "", "", "HTTP/1.0", ""));
    c.after = After::Closed;
    v.push_back(c);
  }
  {
    Case c = pass("no_framing_fields_on_204", "RFC 9110 §8.6", req("GET", "/status?code=204"));
    c.statuses = {204};
    c.check_answers = [](const A& a) {
      answer_lacks("Content-Length")(a);
      answer_lacks("Transfer-Encoding")(a);
    };
    v.push_back(c);
  }
  {
    Case c = pass("no_body_on_304", "RFC 9110 §15.4.5", req("GET", "/status?code=304"));
    c.statuses = {304};
    c.check_answers = answer_lacks("Transfer-Encoding");
    v.push_back(c);
  }
  {
    // A final answer instead of 100 when the head alone decides it; the body is never read.
    Case c = reject("expect_continue_over_max_body_size_413", "RFC 9110 §10.1.1",
                    req("POST", "/", "Expect: 100-continue\r\nContent-Length: 70000\r\n"), 413);
    c.check_answers = answer_has("Connection", "close");
    v.push_back(c);
  }
  v.push_back(pass("get_with_content_forwarded", "RFC 9110 §9.3.1", req("GET", "/gc", "Content-Length: 3\r\n", "abc"),
                   all_of({saw("GET", "/gc", "abc"), has("Content-Length", "3")})));
  v.push_back(pass("post_empty_content", "RFC 9110 §8.6", req("POST", "/pe", "Content-Length: 0\r\n"),
                   all_of({saw("POST", "/pe", ""), has("Content-Length", "0")})));
  v.push_back(pass("value_ows_trimmed", "RFC 9110 §5.5", req("GET", "/ows", "X-W: \t v v \t\r\n"),
                   [](const V& f) {
                     EXPECT_NE(f[0].raw_head.find("\r\nX-W: v v\r\n"), std::string::npos) << f[0].raw_head;
                   }));
  {
    // What a worker sends is parsed as strictly as a client's request: a malformed response
    // is never passed on (502), the client's connection stays usable.
    const std::pair<const char*, const char*> bad[] = {
        {"obs-fold", "RFC 9112 §5.2"},          {"space-colon", "RFC 9112 §5.1"},
        {"cl-invalid", "RFC 9112 §6.3"},        {"cl-differing", "RFC 9112 §6.3"},
        {"cl-te", "RFC 9112 §6.3"},             {"te-not-chunked", "RFC 9112 §6.3"},
        {"bare-lf", "RFC 9112 §2.2"},           {"nul-in-value", "RFC 9110 §5.5"},
        {"cl-on-204", "RFC 9110 §8.6"},         {"unasked-101", "RFC 9110 §7.8"},
        {"http10-te", "RFC 9112 §6.1"},         {"bad-status", "RFC 9112 §4"},
    };
    for (auto [kind, rule] : bad) {
      std::string name = std::string("worker_") + kind + "_502";
      for (auto& ch : name)
        if (ch == '-') ch = '_';
      Case c = pass(name, rule, req("GET", std::string("/bad-response?kind=") + kind));
      c.statuses = {502};
      v.push_back(c);
    }
    Case c = pass("worker_short_body_closes_client", "RFC 9112 §6.3", req("GET", "/bad-response?kind=short-body"));
    c.statuses = {};
    c.truncated = true;
    c.after = After::Closed;
    v.push_back(c);
    Case h = pass("worker_hop_by_hop_fields_stripped", s761, req("GET", "/bad-response?kind=hop"));
    h.check_answers = [](const A& a) {
      for (const char* n : {"Connection", "X-Secret", "Keep-Alive", "Proxy-Connection", "Upgrade", "Trailer"})
        EXPECT_FALSE(itest::has_header(a[0].headers, n)) << n;
      EXPECT_EQ(a[0].header("X-Kept"), "k");
      EXPECT_EQ(a[0].header("Date"), "Sun, 06 Nov 1994 08:49:37 GMT") << "the worker's Date is kept";
      EXPECT_EQ(a[0].body, "ok");
    };
    v.push_back(h);
  }
  v.push_back(reject("expect_other_417", "RFC 9110 §10.1.1", req("GET", "/", "Expect: teapot\r\n"), 417));
  return v;
}

class H1Rules : public ::testing::TestWithParam<Case> {};

TEST_P(H1Rules, Case) { run_case(GetParam()); }

INSTANTIATE_TEST_SUITE_P(Rfc9112, H1Rules, ::testing::ValuesIn(rfc9112()), CaseName());
INSTANTIATE_TEST_SUITE_P(Rfc9110, H1Rules, ::testing::ValuesIn(rfc9110()), CaseName());

class DaemonsEnv : public ::testing::Environment {
 public:
  void SetUp() override {
    Daemons::start([](itest::ConfigBuilder& cfg) { cfg.proxy("max_body_size", itest::quote("64KiB")); });
  }
  void TearDown() override { Daemons::stop(); }
};

[[maybe_unused]] ::testing::Environment* const kEnv = ::testing::AddGlobalTestEnvironment(new DaemonsEnv);

}  // namespace
}  // namespace corral::hostile
