-- Pandoc filter of the sgdlab built-in engine, applied to every output format.

-- Does the TeX text consist of one brace group, `{...}`? TeX never breaks a line inside one.
local function one_group(text)
  if text:sub(1, 1) ~= "{" or text:sub(-1) ~= "}" then return false end
  local depth, i = 0, 1
  while i <= #text do
    local c = text:sub(i, i)
    if c == "\\" then
      i = i + 1  -- an escaped character (\{, \}) does not open or close a group
    elseif c == "{" then
      depth = depth + 1
    elseif c == "}" then
      depth = depth - 1
      if depth == 0 and i < #text then return false end
    end
    i = i + 1
  end
  return depth == 0
end

function Math(m)
  -- texmath reads the norm bars `\|` as the relation "parallel" (U+2225): in Typst a
  -- superscript then floats above it (`\|x\|^2`). `\Vert` is the delimiter TeX means.
  m.text = m.text:gsub("(\\+)|", function(slashes)
    -- an even run of backslashes is a TeX line break `\\` followed by `|`: leave it
    if #slashes % 2 == 0 then return nil end
    return slashes:sub(2) .. "\\Vert "
  end)
  -- Typst breaks inline math after × and other operators, and drops TeX's braces: a formula that
  -- is one group (a number of sgdlab.fmt, `{1.8 \times 10^{-7}}`) becomes one box, as in TeX.
  if FORMAT == "typst" and m.mathtype == "InlineMath" and one_group(m.text) then
    local typ = pandoc.write(pandoc.Pandoc({pandoc.Plain({m})}), "typst"):gsub("%s+$", "")
    return pandoc.RawInline("typst", "#box(" .. typ .. ");")
  end
  return m
end
