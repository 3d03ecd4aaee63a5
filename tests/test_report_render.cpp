// The HTML report as a browser shows it: a report made by `trainbench report` from a
// synthetic study is opened in headless Chromium, offline, and every chart must have drawn
// (as a non-empty SVG), every sample image too, with no script error, and the screenshot
// must not be blank. Skipped where Chromium is not installed or the build has no charts.
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

#include "core/atomic_file.h"
#include "png_reader.h"
#include "report/html_report.h"
#include "report_fixtures.h"
#include "test_util.h"

namespace tb {
namespace {

using testing::TempDir;

using Output = testing::CommandResult;
using testing::run_command;

std::string find_chromium() {
  for (const char* name :
       {"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}) {
    const Output o = run_command(std::string("command -v ") + name + " 2>/dev/null");
    if (o.code == 0 && !o.output.empty()) return o.output.substr(0, o.output.find('\n'));
  }
  return "";
}

// Headless, offline, no profile left behind; the virtual time budget lets the page's
// promises and timers run to completion before the DOM is dumped or the screenshot taken.
std::string chromium_command(const std::string& chromium, const std::string& profile,
                             const std::string& action, const std::string& page) {
  return "timeout 120 " + chromium +
         " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
         " --disable-background-networking --disable-component-update --disable-sync"
         " --disable-extensions --hide-scrollbars --virtual-time-budget=20000"
         " --user-data-dir=" +
         profile + " --window-size=1400,4000 " + action + " file://" + page + " 2>/dev/null";
}

// The value of attribute `name` in the first tag starting with `tag`, or "".
std::string attribute(const std::string& dom, const std::string& tag, const std::string& name) {
  const size_t at = dom.find(tag);
  if (at == std::string::npos) return "";
  const std::string element = dom.substr(at, dom.find('>', at) - at);
  const size_t a = element.find(" " + name + "=\"");
  if (a == std::string::npos) return "";
  const size_t begin = a + name.size() + 3;
  return element.substr(begin, element.find('"', begin) - begin);
}

// Vega's SVG roots (class "marks") with a positive width and height.
int drawn_svgs(const std::string& dom) {
  int count = 0;
  for (size_t at = 0; (at = dom.find("<svg", at)) != std::string::npos; ++at) {
    const std::string element = dom.substr(at, dom.find('>', at) - at);
    if (element.find("class=\"marks\"") == std::string::npos) continue;
    const std::string w = attribute(element, "<svg", "width");
    const std::string h = attribute(element, "<svg", "height");
    if (!w.empty() && !h.empty() && std::atof(w.c_str()) > 0 && std::atof(h.c_str()) > 0) ++count;
  }
  return count;
}

TEST(ReportRender, EveryChartDrawsInHeadlessChromium) {
  const std::string chromium = find_chromium();
  if (chromium.empty()) GTEST_SKIP() << "chromium is not installed (scripts/install-deps.sh)";
  if (!report_charts_available())
    GTEST_SKIP() << "this build has no chart libraries (no npm at build time)";
  TempDir tmp;
  const std::string results = tmp.str() + "/results.jsonl";
  testing::write_records(results, testing::synthetic_study());
  const std::string page = tmp.str() + "/report.html";
  const Output made =
      run_command(std::string(TB_BINARY) + " report " + results + " -o " + page + " 2>&1");
  ASSERT_EQ(made.code, 0) << made.output;
  const std::string html = read_file(page);
  const int expected = std::atoi(attribute(html, "<body", "data-charts-expected").c_str());
  EXPECT_EQ(expected, 16);

  const Output dom =
      run_command(chromium_command(chromium, tmp.str() + "/profile-dom", "--dump-dom", page));
  ASSERT_EQ(dom.code, 0) << "chromium failed";
  const std::string errors = attribute(dom.output, "<body", "data-errors");
  EXPECT_EQ(errors, "0") << "script errors on the page; the list is in #tb-errors:\n"
                         << dom.output.substr(dom.output.find("id=\"tb-errors\""), 2000);
  EXPECT_EQ(attribute(dom.output, "<body", "data-charts-status"), "ok");
  EXPECT_EQ(attribute(dom.output, "<body", "data-charts-drawn"), std::to_string(expected));
  EXPECT_EQ(drawn_svgs(dom.output), expected);
  EXPECT_EQ(attribute(dom.output, "<body", "data-samples-drawn"), "24");  // 6 runs x 4 images

  const std::string png = tmp.str() + "/report.png";
  const Output shot = run_command(
      chromium_command(chromium, tmp.str() + "/profile-shot", "--screenshot=" + png, page));
  ASSERT_EQ(shot.code, 0) << "chromium failed to take a screenshot";
  const testing::RgbaImage image = testing::decode_png(read_file(png));
  ASSERT_EQ(image.width, 1400);
  ASSERT_EQ(image.height, 4000);
  // Not blank: plenty of pixels that are not the background, in many colours.
  size_t inked = 0;
  std::set<uint32_t> colours;
  for (size_t i = 0; i < image.pixels.size(); i += 4) {
    const uint8_t r = image.pixels[i], g = image.pixels[i + 1], b = image.pixels[i + 2];
    inked += !(r > 235 && g > 235 && b > 235);
    if (colours.size() < 5000) colours.insert(uint32_t(r) << 16 | uint32_t(g) << 8 | b);
  }
  EXPECT_GT(double(inked) / (image.width * image.height), 0.05);
  EXPECT_GT(colours.size(), 200u);
}

}  // namespace
}  // namespace tb
