#! status=0 compare=dash
(exec true)
echo "true=$?"
(exec false)
echo "false=$?"
(exec echo "from exec"; echo not-reached)
echo end
