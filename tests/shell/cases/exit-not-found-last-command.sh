#! status=127 compare=dash
echo before
nonexistent_cmd_xyz 2>/dev/null
