hs = {}
if obj.status == nil or obj.status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "The operator has not seen the latest spec yet"
  return hs
end
local phase = obj.status.phase
hs.message = obj.status.message
if phase == "Healthy" then
  hs.status = "Healthy"
elseif phase == "Paused" then
  hs.status = "Suspended"
elseif phase == "RolledBack" or phase == "Degraded" or phase == "Failed" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
return hs
