#!/usr/bin/env bash
# Optional: the .NET Interactive kernel for VS Code / Jupyter (Microsoft deprecated it in 2026; the last
# version still installs and runs). Not needed for `deepseek-notebooks report`, which hosts the kernel itself.
set -euo pipefail
dotnet tool update -g Microsoft.dotnet-interactive --version 1.0.712001 || dotnet tool install -g Microsoft.dotnet-interactive --version 1.0.712001
export PATH="$PATH:$HOME/.dotnet/tools"
if command -v jupyter >/dev/null 2>&1; then dotnet interactive jupyter install; fi
echo "kernel installed: open notebooks/*.ipynb in VS Code (Polyglot Notebooks or Jupyter extension) and pick '.NET (C#)'."
