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
}  // namespace

Result<ContainerConfig> ParseContainerConfig(std::string_view text) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Status::Corruption("container config: not a JSON object");
  ContainerConfig c;
  const std::string os = j.value("os", ""), arch = j.value("architecture", "");
  c.platform = os + "/" + arch;
  if (j.contains("variant") && j["variant"].is_string()) c.platform += "/" + j["variant"].get<std::string>();
  if (j.contains("config") && j["config"].is_object()) {
    const json& cfg = j["config"];
    c.entrypoint = Strings(cfg, "Entrypoint");
    c.cmd = Strings(cfg, "Cmd");
    c.env = Strings(cfg, "Env");
    if (cfg.contains("WorkingDir") && cfg["WorkingDir"].is_string()) c.working_dir = cfg["WorkingDir"].get<std::string>();
    if (cfg.contains("User") && cfg["User"].is_string()) c.user = cfg["User"].get<std::string>();
  }
  return c;
}

}  // namespace daxfs
