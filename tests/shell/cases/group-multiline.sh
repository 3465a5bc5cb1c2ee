#! status=0 compare=dash
{
  echo first
  echo second
} | tr a-z A-Z
