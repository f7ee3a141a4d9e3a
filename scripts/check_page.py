#!/usr/bin/env python3
"""check_page.py PAGE.html SCREENSHOT.png [--height H] — loads a page in headless Chromium
(Debian's chromium), fails on any console message (errors, uncaught exceptions) and on any local
<img src> / <a href> that does not exist, and takes a screenshot. Exit 0 only when all is well."""
import argparse
import html.parser
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run_files import RunFiles  # noqa: E402


class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.targets = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value and ((tag == "img" and name == "src") or (tag == "a" and name == "href")
                          or (tag == "script" and name == "src")):
                self.targets.append(value)


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("check_page.py: no chromium on PATH (scripts/python-deps installs Debian's chromium)")


def check(page, screenshot, width=1300, height=2400):
    page = os.path.abspath(page)
    problems = []
    parser = Links()
    with open(page, encoding="utf-8") as f:
        parser.feed(f.read())
    for target in parser.targets:
        parsed = urllib.parse.urlparse(target)
        if parsed.scheme or target.startswith("#"):
            if parsed.scheme not in ("", "file"):
                problems.append(f"external link {target} (the page must work offline)")
            continue
        path = os.path.join(os.path.dirname(page), urllib.parse.unquote(parsed.path))
        if not os.path.exists(path):
            problems.append(f"broken link: {target}")
    # Chromium draws into a folder of its own; the picture then goes beside the page by the
    # engine's rules (scripts/run_files.py: never through a link planted there).
    with tempfile.TemporaryDirectory(prefix="superpose-page-") as private:
        shot = os.path.join(private, "screenshot.png")
        command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                   "--enable-logging=stderr", "--v=0", f"--window-size={width},{height}",
                   "--virtual-time-budget=5000", f"--screenshot={shot}", "file://" + page]
        result = subprocess.run(command, capture_output=True, text=True, timeout=180)
        console = [line for line in (result.stdout + result.stderr).splitlines()
                   if re.search(r":CONSOLE[:(]", line)]
        problems += [f"console: {line}" for line in console]
        if not os.path.exists(shot) or os.path.getsize(shot) < 1000:
            problems.append(f"no screenshot written (chromium exit {result.returncode})")
        else:
            target = os.path.abspath(screenshot)
            with open(shot, "rb") as f:
                RunFiles.at(os.path.dirname(target)).write_bytes(os.path.basename(target), f.read())
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("page")
    parser.add_argument("screenshot")
    parser.add_argument("--height", type=int, default=2400)
    args = parser.parse_args()
    problems = check(args.page, args.screenshot, height=args.height)
    for p in problems:
        print(f"check_page.py: {args.page}: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(f"{args.page}: loads with no console messages and no broken links; screenshot "
          f"{args.screenshot}")


if __name__ == "__main__":
    main()
