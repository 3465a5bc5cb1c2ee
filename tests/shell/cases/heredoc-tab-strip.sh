#! status=0 compare=dash
if true; then
	cat <<-EOF
	indented with tabs
		two tabs
	  tab then spaces
	EOF
fi
