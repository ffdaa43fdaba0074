// Differential oracle: parse each input exactly as TF Serving's ParseJson does (rapidjson 1.1.0,
// kParseIterativeFlag | kParseNanAndInfFlag | kParseStopWhenDoneFlag, EncodedInputStream over a
// MemoryStream) and print the result in a canonical form.
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>
#include "rapidjson/document.h"
#include "rapidjson/encodedstream.h"
#include "rapidjson/memorystream.h"
#include "rapidjson/error/en.h"

static void hex(const char* s, size_t n, std::string* out) {
  static const char* d = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) { unsigned char c = s[i]; out->push_back(d[c >> 4]); out->push_back(d[c & 15]); }
}

static void dump(const rapidjson::Value& v, std::string* out) {
  switch (v.GetType()) {
    case rapidjson::kNullType: out->append("n"); break;
    case rapidjson::kFalseType: out->append("f"); break;
    case rapidjson::kTrueType: out->append("t"); break;
    case rapidjson::kStringType: out->append("s"); hex(v.GetString(), v.GetStringLength(), out); break;
    case rapidjson::kNumberType: {
      char buf[64];
      if (v.IsDouble()) { double d = v.GetDouble(); uint64_t b; memcpy(&b, &d, 8); snprintf(buf, sizeof buf, "d%016llx", (unsigned long long)b); }
      else if (v.IsInt64()) snprintf(buf, sizeof buf, "i%lld", (long long)v.GetInt64());
      else snprintf(buf, sizeof buf, "i%llu", (unsigned long long)v.GetUint64());
      out->append(buf); break;
    }
    case rapidjson::kArrayType: {
      out->append("[");
      bool first = true;
      for (const auto& e : v.GetArray()) { if (!first) out->append(","); first = false; dump(e, out); }
      out->append("]"); break;
    }
    case rapidjson::kObjectType: {
      out->append("{");
      bool first = true;
      for (const auto& m : v.GetObject()) {
        if (!first) out->append(","); first = false;
        hex(m.name.GetString(), m.name.GetStringLength(), out); out->append(":"); dump(m.value, out);
      }
      out->append("}"); break;
    }
  }
}

int main() {
  std::vector<char> all;
  char chunk[65536]; size_t n;
  while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) all.insert(all.end(), chunk, chunk + n);
  size_t pos = 0;
  while (pos + 4 <= all.size()) {
    uint32_t len; memcpy(&len, &all[pos], 4); pos += 4;
    std::string body(&all[pos], len); pos += len;
    std::string out;
    if (body.empty()) { out = "E The document is empty"; }
    else {
      rapidjson::Document doc;
      rapidjson::MemoryStream ms(body.data(), body.size());
      rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> js(ms);
      constexpr auto flags = rapidjson::kParseIterativeFlag | rapidjson::kParseNanAndInfFlag | rapidjson::kParseStopWhenDoneFlag;
      if (doc.ParseStream<flags>(js).HasParseError()) {
        char buf[64]; snprintf(buf, sizeof buf, " at offset: %zu", doc.GetErrorOffset());
        out = std::string("E ") + rapidjson::GetParseError_En(doc.GetParseError()) + buf;
      } else { out = "V "; dump(doc, &out); }
    }
    fwrite(out.data(), 1, out.size(), stdout); fputc('\n', stdout);
  }
}
