#include <nlohmann/json.hpp>

#include "daxfs/container.h"

namespace daxfs {

namespace {
using json = nlohmann::json;

std::vector<std::string> Strings(const json& obj, const char* key) {
  std::vector<std::string> out;
  if (!obj.contains(key) || !obj[key].is_array()) return out;
  for (const json& v : obj[key])
    if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

// A string member, or "" (absent or not a string: never an exception).
std::string Str(const json& obj, const char* key) {
  return obj.contains(key) && obj[key].is_string() ? obj[key].get<std::string>() : std::string();
}
}  // namespace

Result<ContainerConfig> ParseContainerConfig(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("container config: not a JSON object");
  ContainerConfig c;
  const std::string os = Str(j, "os"), arch = Str(j, "architecture");
  c.platform = os + "/" + arch;
  if (!Str(j, "variant").empty()) c.platform += "/" + Str(j, "variant");
  if (j.contains("config") && j["config"].is_object()) {
    const json& cfg = j["config"];
    c.entrypoint = Strings(cfg, "Entrypoint");
    c.cmd = Strings(cfg, "Cmd");
    c.env = Strings(cfg, "Env");
    c.working_dir = Str(cfg, "WorkingDir");
    c.user = Str(cfg, "User");
  }
  return c;
}

}  // namespace daxfs
