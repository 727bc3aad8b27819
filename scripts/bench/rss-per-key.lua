-- wrk script: each of wrk's threads cycles through its own share of
-- KEYS distinct rate-limit keys, sent in the X-Client header.
local keys = tonumber(os.getenv("KEYS") or "200000")
local threads = {}
local counter = 0


function setup(thread)
	thread:set("id", #threads)
	table.insert(threads, thread)
end

function init(args)
	per = math.floor(keys / tonumber(os.getenv("THREADS") or "2"))
end

function request()
	counter = counter + 1
	local key
	if os.getenv("ONE_KEY") == "1" then
		key = "same"
	else
		key = tostring(id * per + (counter % per))
	end
	return wrk.format("POST", "/limited", { ["X-Client"] = key }, "{}")
end
