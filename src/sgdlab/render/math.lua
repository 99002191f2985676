-- Pandoc filter of the sgdlab built-in engine, applied to every output format.
-- texmath reads the norm bars `\|` as the relation "parallel" (U+2225): in Typst a
-- superscript then floats above it (`\|x\|^2`). `\Vert` is the delimiter TeX means.
function Math(m)
  m.text = m.text:gsub("(\\+)|", function(slashes)
    -- an even run of backslashes is a TeX line break `\\` followed by `|`: leave it
    if #slashes % 2 == 0 then return nil end
    return slashes:sub(2) .. "\\Vert "
  end)
  return m
end
