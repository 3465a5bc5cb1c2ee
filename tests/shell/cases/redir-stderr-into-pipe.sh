#! status=0 compare=dash
{ echo normal; echo problem >&2; } 2>&1 | tr a-z A-Z
{ echo normal; echo problem >&2; } 2>/dev/null | tr a-z A-Z
