-- wrk script for scripts/bench/e2e.sh: cycles through deliveries signed
-- ahead of time by `caddy webhook sign`, giving each request a delivery id
-- of its own (GitHub's signature covers the body, not X-GitHub-Delivery),
-- so dedup sees only new deliveries.
--
--   wrk -s e2e.lua URL -- <run-id> <dir with N.body and N.headers files> <count>

local threads = 0

function setup(thread)
	thread:set("tid", threads)
	threads = threads + 1
end

local tails = {}
local n = 0
local prefix
local path

function init(args)
	local dir, count = args[2], tonumber(args[3])
	prefix = args[1] .. "-" .. tostring(tid) .. "-"
	path = wrk.path
	for i = 1, count do
		local body = assert(io.open(dir .. "/" .. i .. ".body", "rb")):read("*a")
		local lines = {}
		for line in assert(io.open(dir .. "/" .. i .. ".headers", "rb")):lines() do
			if not line:match("^X%-GitHub%-Delivery:") then
				lines[#lines + 1] = line
			end
		end
		tails[i] = "Host: " .. wrk.host .. ":" .. wrk.port .. "\r\n"
			.. "Content-Type: application/json\r\n"
			.. "X-GitHub-Event: push\r\n"
			.. table.concat(lines, "\r\n") .. "\r\n"
			.. "Content-Length: " .. #body .. "\r\n\r\n" .. body
	end
end

function request()
	n = n + 1
	return "POST " .. path .. " HTTP/1.1\r\nX-GitHub-Delivery: " .. prefix .. n .. "\r\n" .. tails[(n % #tails) + 1]
end
