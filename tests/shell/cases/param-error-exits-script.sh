#! status=2 compare=dash
echo before
: "${missing_required_var:?must be set}"
echo not-reached
