#! status=0 compare=dash
nonexistent_cmd_xyz 2>/dev/null
echo "status=$?"
nonexistent_cmd_xyz arg1 arg2 2>/dev/null || echo "failed as expected"
