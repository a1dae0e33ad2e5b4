"""The monthly assessment report (月度考核通报): per-station league tables as PDF and XLSX."""
