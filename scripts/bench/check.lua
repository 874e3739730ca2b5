-- wrk script: POST /v1/check with a random key out of 10 000 (policy `bench`).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, "/v1/check", nil, '{"policy":"bench","key":"k' .. math.random(10000) .. '"}')
end
